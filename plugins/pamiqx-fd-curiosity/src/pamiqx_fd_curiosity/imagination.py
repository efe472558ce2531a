"""K-step imagination of a forward-dynamics model, on both sides of a run.

A k-step prediction feeds the FD its own previous prediction ``k-1`` times; the
errors of the ``K`` predictions of one observation are averaged with
exponentially decaying weights (:func:`imagination_weights`, :func:`combine_errors`,
which uses the weights of the predictions available, :func:`available_weights`).

* Training side: :func:`imagination_errors` computes them over whole sequences
  and :func:`weighted_loss` turns them into the FD's loss.
* Agent side: :class:`Imagination` runs one step at a time, all worlds and
  branches batched, and scores each observation as it arrives.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from pamiqx_fd_curiosity.networks import ForwardModel


def imagination_weights(steps: int) -> Tensor:
    """Return the normalised exponential weights of the k-step errors.

    ``w_k = w^(k-1) / sum_j w^(j-1)`` with ``w = exp(-1/K)``, so the 1-step
    prediction weighs most.

    Args:
        steps: ``K``, the number of imagination steps (at least 1).

    Returns:
        ``(K,)`` float32 weights summing to 1.

    Raises:
        ValueError: If ``steps`` is below 1.
    """
    if steps < 1:
        raise ValueError(f"imagination steps must be at least 1, got {steps}")
    decay = math.exp(-1.0 / steps)
    raw = torch.tensor([decay**k for k in range(steps)], dtype=torch.float64)
    return (raw / raw.sum()).float()


def imagination_errors(
    model: ForwardModel,
    latents: Tensor,
    actions: Tensor,
    next_latents: Tensor,
    dones: Tensor,
    hidden: Tensor,
    steps: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """k-step prediction errors over a sequence, aligned to the transition they score.

    Step 1 starts from the data (real latent and real recurrent state); steps
    2..K feed the FD its own previous prediction together with the action
    actually taken at that step in the data. A k-step prediction started at
    ``s`` targets ``o_{s+k}`` and is valid only if no episode ended in
    ``s..s+k-1``.

    Args:
        model: The forward-dynamics model.
        latents: ``(T, E, D)`` latents ``o_t``.
        actions: ``(T, E, A)`` one-hot actions.
        next_latents: ``(T, E, D)`` latents of ``o_{t+1}``.
        dones: ``(T, E)`` bool.
        hidden: ``(E, H)`` recurrent state before step 0.
        steps: ``K``.

    Returns:
        ``(K, T, E)`` errors, where ``[k-1, t]`` is the MSE (mean over latent
        dimensions) of the k-step prediction of ``o_{t+1}``, ``(K, T, E)`` their
        validity, and the ``(E, H)`` state to start the following sequence from.
    """
    alive = ~dones
    time, envs = dones.shape
    predictions, hiddens, last = model.run_window(latents, actions, dones, hidden)
    errors = [(predictions - next_latents).pow(2).mean(dim=-1)]
    valid = [alive]
    mask = alive
    for k in range(2, steps + 1):
        n = time - k + 1
        pad = dones.new_zeros((min(k - 1, time), envs))
        if n <= 0:
            errors.append(pad.to(latents.dtype))
            valid.append(pad)
            continue
        predictions, hiddens = model(predictions[:n], actions[k - 1 :], hiddens[:n])
        mask = mask[:n] & alive[k - 1 :]
        error = (predictions - next_latents[k - 1 :]).pow(2).mean(dim=-1)
        errors.append(torch.cat([pad.to(error.dtype), error]))
        valid.append(torch.cat([pad, mask]))
    return torch.stack(errors), torch.stack(valid), last


def weighted_loss(errors: Tensor, valid: Tensor, weights: Tensor) -> tuple[Tensor, list[float]]:
    """Combine the per-step masked MSEs with the imagination weights.

    Steps without a single valid prediction (a batch shorter than K, or cut
    by episode ends) drop out of both sums.

    Args:
        errors: ``(K, T, E)`` from :func:`imagination_errors`.
        valid: ``(K, T, E)`` bool.
        weights: ``(K,)`` from :func:`imagination_weights`.

    Returns:
        The scalar loss and the per-step mean errors (nan where a step had no data).
    """
    total = errors.new_zeros(())
    norm = errors.new_zeros(())
    per_step: list[float] = []
    for k in range(errors.shape[0]):
        count = valid[k].sum()
        if int(count) == 0:
            per_step.append(math.nan)
            continue
        step_loss = (errors[k] * valid[k]).sum() / count
        per_step.append(float(step_loss.detach()))
        total = total + weights[k] * step_loss
        norm = norm + weights[k]
    return total / norm.clamp_min(1e-12), per_step


def available_weights(steps: int) -> Tensor:
    """Return the weights used when only ``n`` of the ``K`` predictions exist, for every ``n``.

    Row ``n`` holds :func:`imagination_weights` of ``n`` steps (``w = exp(-1/n)``)
    padded with zeros to ``K``: right after a start, an observation has fewer
    predictions than ``K``, and the reference averages those it has with the
    decay of their own count (``average_exponentially`` in ``exp/utils.py``),
    not with ``exp(-1/K)``. Row 0 is all zeros.

    Args:
        steps: ``K``.

    Returns:
        ``(K + 1, K)`` float32 weights.
    """
    table = torch.zeros(steps + 1, steps)
    for n in range(1, steps + 1):
        table[n, :n] = imagination_weights(n)
    return table


def combine_errors(errors: Tensor, valid: Tensor, table: Tensor | None = None) -> Tensor:
    """Exponentially average the available k-step errors of each transition.

    The predictions that exist are always the first ``n`` (an episode start cuts
    the deeper ones), so their count picks the weights (:func:`available_weights`).

    Args:
        errors: ``(K, ...)`` k-step errors.
        valid: ``(K, ...)`` which exist, a prefix along ``K``.
        table: :func:`available_weights` of ``K`` on the errors' device (computed when
            not given).

    Returns:
        ``(...)`` ``sum_k w_k e_k`` with the weights of ``n`` predictions (0 where none is).
    """
    if table is None:
        table = available_weights(errors.shape[0]).to(errors.device)
    weights = table.to(errors.dtype)[valid.sum(dim=0)].movedim(-1, 0)
    return (weights * errors).sum(dim=0)


class Imagination:
    """Agent-side imagination: the FD's real recurrent state and its pending predictions.

    At each step the FD is run once, batched over ``K`` branches and ``E``
    worlds: branch 1 starts from the last real latent ``o_{t-1}`` and the real
    state ``g_{t-1}``; branch ``k`` continues an imagined rollout started
    ``k-1`` steps earlier, fed its own previous prediction. Every branch uses
    the action actually taken, ``a_{t-1}`` (it only becomes known when ``o_t``
    arrives, which is why the predictions are made then rather than at ``t-1``;
    the values are the same). All ``K`` predictions target ``o_t`` and are
    scored against it; the deepest branch is dropped.

    Attributes:
        steps: ``K``.
        table: ``(K + 1, K)`` weights by the number of predictions available
            (:func:`available_weights`).
    """

    def __init__(self, steps: int, device: torch.device) -> None:
        """Start empty (the first observation initialises the state)."""
        self.steps = steps
        self.table = available_weights(steps).to(device)
        self.latent: Tensor | None = None
        self.hidden: Tensor | None = None
        self.branch_latent: Tensor | None = None
        self.branch_hidden: Tensor | None = None
        self.branch_valid: Tensor | None = None

    def ready(self, num_envs: int) -> bool:
        """Return True when the state exists for ``num_envs`` worlds."""
        return self.latent is not None and self.latent.shape[0] == num_envs

    def start(self, latent: Tensor, hidden_dim: int) -> None:
        """Begin from ``latent`` with a zero recurrent state and no pending predictions."""
        envs, dim = latent.shape
        depth = self.steps - 1
        self.latent = latent.clone()
        self.hidden = latent.new_zeros(envs, hidden_dim)
        self.branch_latent = latent.new_zeros(depth, envs, dim)
        self.branch_hidden = latent.new_zeros(depth, envs, hidden_dim)
        self.branch_valid = torch.zeros(depth, envs, dtype=torch.bool, device=latent.device)

    def step(self, model: ForwardModel, latent: Tensor, action: Tensor, starts: Tensor) -> Tensor:
        """Score the arriving latent against every prediction that targeted it.

        Args:
            model: The FD (the agent's inference copy).
            latent: ``(E, D)`` the latent ``o_t`` that just arrived.
            action: ``(E, A)`` one-hot ``a_{t-1}``.
            starts: ``(E,)`` bool, ``o_t`` starts an episode: its world's state
                is reset afterwards and its error is meaningless.

        Returns:
            ``(E,)`` the imagination-averaged error of ``o_t``.
        """
        assert self.latent is not None and self.hidden is not None
        assert self.branch_latent is not None and self.branch_hidden is not None
        assert self.branch_valid is not None
        envs = latent.shape[0]
        inputs = torch.cat([self.latent.unsqueeze(0), self.branch_latent])
        hidden = torch.cat([self.hidden.unsqueeze(0), self.branch_hidden])
        valid = torch.cat([self.branch_valid.new_ones(1, envs), self.branch_valid])
        actions = action.unsqueeze(0).expand(self.steps, *action.shape)
        predictions, hidden = model(inputs, actions, hidden)
        errors = (predictions - latent.unsqueeze(0)).pow(2).mean(dim=-1)
        error = combine_errors(errors, valid, self.table)
        keep = (~starts).to(latent.dtype).unsqueeze(-1)
        depth = self.steps - 1
        self.latent = latent.clone()
        # The 1-step branch consumed the real o_{t-1}: its new state is the real g_t.
        self.hidden = hidden[0] * keep
        self.branch_latent = predictions[:depth] * keep
        self.branch_hidden = hidden[:depth] * keep
        self.branch_valid = valid[:depth] & ~starts
        return error

    def state_dict(self) -> dict[str, Tensor | None]:
        """Return copies of the state (tensors or None)."""
        return {
            "latent": _clone(self.latent),
            "hidden": _clone(self.hidden),
            "branch_latent": _clone(self.branch_latent),
            "branch_hidden": _clone(self.branch_hidden),
            "branch_valid": _clone(self.branch_valid),
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        """Restore :meth:`state_dict` onto ``device``."""
        self.latent = _to(state["latent"], device)
        self.hidden = _to(state["hidden"], device)
        self.branch_latent = _to(state["branch_latent"], device)
        self.branch_hidden = _to(state["branch_hidden"], device)
        self.branch_valid = _to(state["branch_valid"], device)


def _clone(x: Tensor | None) -> Tensor | None:
    return None if x is None else x.detach().clone()


def _to(x: Tensor | None, device: torch.device) -> Tensor | None:
    # clone() also turns inference-mode tensors into ordinary ones.
    return None if x is None else x.to(device).clone()
