"""The K-step imagination of ``hierarchical``'s forward dynamics inside a replayed window.

As the reference's forward-dynamics trainer (src/exp/trainers/forward_dynamics.py
``HiddenStateFDTrainer``, ``imagination_length`` 3 in trainers/hierarchical.yaml):
step 1 of a prediction is made from the data (the layer's real observation and
FD state), steps 2..K from the FD's own previous prediction, with the condition
the data holds at that step. A layer's steps are its acting steps, so an upper
layer imagines at its own timescale. The per-depth mean errors are combined with
:func:`~pamiqx_fd_curiosity.imagination.weighted_loss` (weights ``exp(-(k-1)/K)``).

Depth 1 is the network's own pending prediction (scored in
:meth:`HierarchicalNetwork.step_layers`); :class:`LayerImagination` keeps the
branches of depth 2..K, which live only inside the window (a window starts with
none, as the reference's windows do).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pamiqx_fd_curiosity.hierarchical_layers import Layer, LayerStep
from pamiqx_fd_curiosity.imagination import imagination_weights, weighted_loss


class LayerImagination:
    """The imagined branches of one layer: per depth ``k = 2..K`` a state, a prediction, a flag.

    Branch ``k`` holds the FD state after ``k - 1`` imagined steps and its
    prediction of the layer's next observation; ``alive`` says it exists (it was
    branched inside the window since the row's last reset).

    Attributes:
        steps: ``K``.
        errors: Per depth ``k = 2..K``, the ``(B,)`` errors of each replayed step.
        masks: Per depth, the ``(B,)`` bool masks of the errors that count.
    """

    def __init__(self, steps: int) -> None:
        """Start with no branch (depth 1 needs none)."""
        self.steps = steps
        self.errors: list[list[Tensor]] = [[] for _ in range(steps - 1)]
        self.masks: list[list[Tensor]] = [[] for _ in range(steps - 1)]
        self._states: list[Tensor] = []
        self._predictions: list[Tensor] = []
        self._alive: list[Tensor] = []

    def reset(self, keep: Tensor) -> None:
        """Drop the branches of the rows whose episode starts (``keep`` False)."""
        self._alive = [alive & keep for alive in self._alive]

    def replay_step(
        self,
        layer: Layer,
        index: int,
        step: LayerStep,
        before: dict[str, Tensor],
        after: dict[str, Tensor],
        head_takes_action: bool,
    ) -> None:
        """:meth:`step` for layer ``index`` of a replayed step, from the network's states.

        Args:
            layer: The layer.
            index: Its index.
            step: What the network's forward part computed at the step.
            before: The named parts of the state before the step (after any reset).
            after: The named parts after ``fold_action`` (the step's actions).
            head_takes_action: The prediction head takes the step's action
                (``fd_condition = "action"``).
        """
        action = None
        if head_takes_action:
            action = after["action"] if index == 0 else after[f"goal{index}"]
        first = (
            before[f"fd{index}"],
            before[f"pred{index}"],
            before[f"valid{index}"].squeeze(-1) > 0.5,
        )
        condition, acting = step.conditions[index], step.acting[index]
        self.step(layer, step.observations[index], condition, acting, first, action)

    def step(
        self,
        layer: Layer,
        observation: Tensor,
        condition: Tensor,
        acting: Tensor,
        first: tuple[Tensor, Tensor, Tensor],
        action: Tensor | None,
    ) -> None:
        """Score the branches against the observation that arrived, then branch one step deeper.

        Only the rows where the layer acts change.

        Args:
            layer: The layer whose FD imagines.
            observation: ``(B, d)`` the layer's real observation at this step.
            condition: ``(B, c)`` what the FD core took besides the observation here.
            acting: ``(B,)`` bool, the layer acts at this step.
            first: The depth-1 source: the FD state before this step, its pending
                prediction (of this step's observation) and whether one is pending.
            action: ``(B, a)`` the action the prediction head takes, or None.
        """
        if not self._states:
            depths = range(self.steps - 1)
            self._states = [first[0].new_zeros(first[0].shape) for _ in depths]
            self._predictions = [first[1].new_zeros(first[1].shape) for _ in depths]
            self._alive = [first[2].new_zeros(first[2].shape) for _ in depths]
        for k in range(self.steps - 1):
            error = (self._predictions[k] - observation).pow(2).mean(dim=-1)
            self.errors[k].append(error)
            self.masks[k].append(acting & self._alive[k])
        sources = [first, *zip(self._states, self._predictions, self._alive, strict=True)][:-1]
        act = acting.unsqueeze(-1)
        states: list[Tensor] = []
        predictions: list[Tensor] = []
        alive: list[Tensor] = []
        for k, (state, prediction, exists) in enumerate(sources):
            output, new_state = layer.fd_step(prediction, condition, state)
            new_prediction = layer.predict(output, action)
            states.append(new_state.where(act, self._states[k]))
            predictions.append(new_prediction.where(act, self._predictions[k]))
            alive.append(exists.where(acting, self._alive[k]))
        self._states, self._predictions, self._alive = states, predictions, alive

    def loss(
        self, layer: int, errors: list[Tensor], masks: list[Tensor]
    ) -> tuple[Tensor, dict[str, float]]:
        """Combine the depth-1 errors with the imagined ones into the layer's FD loss.

        Args:
            layer: The layer's index (for the metrics' names).
            errors: The ``(B,)`` depth-1 errors of each replayed step.
            masks: Their ``(B,)`` bool masks (scored, and predicted inside the window).

        Returns:
            The loss (per-depth masked means, weighted ``exp(-(k-1)/K)`` over the depths
            that have any) and ``hierarchical/error_<layer>`` (depth 1) and
            ``hierarchical/imagination_<layer>_<k>`` metrics.
        """
        depth_errors = [torch.stack(errors), *(torch.stack(e) for e in self.errors)]
        depth_masks = [torch.stack(masks), *(torch.stack(m) for m in self.masks)]
        loss, per_depth = weighted_loss(
            torch.stack(depth_errors), torch.stack(depth_masks), imagination_weights(self.steps)
        )
        metrics: dict[str, float] = {}
        for k, value in enumerate(per_depth, start=1):
            if not math.isnan(value):  # nan: no prediction of that depth counted
                name = f"error_{layer}" if k == 1 else f"imagination_{layer}_{k}"
                metrics[f"hierarchical/{name}"] = value
        return loss, metrics
