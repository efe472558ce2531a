"""The imagination mechanisms of the family: ``adversarial`` and ``delta-minimize``.

Both are online: the reward of the transition into ``o_t`` is computed in
:meth:`~pamiqx.api.Curiosity.agent_step` when ``o_t`` arrives, from the K
predictions the forward-dynamics model made of it (see
:mod:`pamiqx_fd_curiosity.imagination`). ``meta`` is in :mod:`pamiqx_fd_curiosity.meta`.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from pamiqx.api import ActionSpec, ObservationSpec, Transitions, one_hot_width
from pamiqx_fd_curiosity.base import ForwardDynamicsCuriosity
from pamiqx_fd_curiosity.imagination import (
    Imagination,
    combine_errors,
    imagination_errors,
    imagination_weights,
    weighted_loss,
)
from pamiqx_fd_curiosity.networks import ForwardModel, build_forward_model, latent_width

if TYPE_CHECKING:
    from pamiqx_fd_curiosity.fd_options import ImaginationOptions


class ImaginationCuriosity(ForwardDynamicsCuriosity):
    """One FD with K-step imagination; subclasses turn its error ``e_t`` into a reward.

    Attributes:
        steps: ``K``, the imagination depth.
        weights: ``(K,)`` imagination weights.
        imagination: The agent-side FD state and pending predictions.
        last_error: ``(E,)`` the imagination-averaged error ``e_t`` of the last
            agent step (a diagnostic; 0 where an episode started).
    """

    def __init__(
        self,
        options: ImaginationOptions,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
        device: str,
    ) -> None:
        """Build the FD and the optimizer on ``device``.

        Args:
            options: The plugin's options.
            observation_spec: The latents ``o_t`` (vectors or tokens) the representation
                stage hands over.
            action_spec: The action space.
            device: Where everything lives.
        """
        model = build_forward_model(
            options, latent_width(observation_spec), one_hot_width(action_spec.nvec)
        )
        super().__init__(observation_spec, model, action_spec, device, options)
        self.hidden_dim = model.hidden_dim
        self.steps = options.max_imagination_steps
        self.weights = imagination_weights(self.steps).to(self.device)
        self.imagination = Imagination(self.steps, self.device)
        self.last_error: Tensor | None = None

    @abc.abstractmethod
    def _reward(self, error: Tensor, starts: Tensor) -> Tensor:
        """Turn the imagination-averaged errors into rewards (0 where ``starts``)."""

    def _agent_ready(self, num_envs: int) -> bool:
        return self.imagination.ready(num_envs)

    def _agent_start(self, latent: Tensor) -> None:
        self.imagination.start(latent, self.hidden_dim)

    def _agent_reward(self, latent: Tensor, action: Tensor, starts: Tensor) -> Tensor:
        assert isinstance(self.agent_model, ForwardModel)
        assert self.imagination.latent is not None and self.imagination.hidden is not None
        # The transition (o_{t-1}, a_{t-1}) -> o_t, with the real state before it.
        self._remember(
            {
                "latent": self.imagination.latent,
                "action": action,
                "next_latent": latent,
                "hidden": self.imagination.hidden,
                "done": starts,
            }
        )
        error = self.imagination.step(self.agent_model, latent, action, starts)
        self.last_error = torch.where(starts, torch.zeros_like(error), error)
        self._record("error", error, ~starts)
        return self._reward(error, starts)

    def _agent_state(self) -> dict[str, Any]:
        return {"imagination": self.imagination.state_dict()}

    def _load_agent_state(self, state: dict[str, Any]) -> None:
        self.imagination.load_state_dict(state["imagination"], self.device)

    def _zero_train_hidden(self, num_envs: int) -> Tensor:
        return torch.zeros(num_envs, self.hidden_dim, device=self.device)

    def _loss(
        self,
        latents: Tensor,
        actions: Tensor,
        next_latents: Tensor,
        dones: Tensor,
        hidden: Tensor,
    ) -> tuple[Tensor, dict[str, float], Tensor]:
        assert isinstance(self.model, ForwardModel)
        errors, valid, last = imagination_errors(
            self.model, latents, actions, next_latents, dones, hidden, self.steps
        )
        loss, metrics = self._imagination_loss(errors, valid)
        return loss, metrics, last

    def _imagination_loss(self, errors: Tensor, valid: Tensor) -> tuple[Tensor, dict[str, float]]:
        loss, per_step = weighted_loss(errors, valid, self.weights)
        metrics = {"loss": float(loss.detach())}
        metrics.update({f"error_{k + 1}step": e for k, e in enumerate(per_step)})
        return loss, metrics

    def _window_loss(self, window: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """The imagination rollout loss of windows of ``L + K - 1`` stored steps.

        As the reference trains (``trainers/forward_dynamics.py``): step 1 runs over
        the window from its stored state; every depth ``k`` scores the ``L``
        predictions started at the window's first ``L`` steps, so each depth has
        the same number of terms.
        """
        assert isinstance(self.model, ForwardModel)
        hidden = window["hidden"][0]
        errors, valid, _ = imagination_errors(
            self.model,
            window["latent"],
            window["action"],
            window["next_latent"],
            window["done"],
            hidden,
            self.steps,
        )
        length = window["latent"].shape[0] - (self.steps - 1)
        # errors[k-1, t] is the k-step prediction of o_{t+1}, started at step t - k + 1.
        positions = torch.arange(window["latent"].shape[0], device=errors.device)
        depth = torch.arange(self.steps, device=errors.device).unsqueeze(1)
        started_inside = (positions.unsqueeze(0) - depth) < length
        return self._imagination_loss(errors, valid & started_inside.unsqueeze(-1))

    @torch.no_grad()
    def prediction_errors(self, batch: Transitions) -> Tensor:
        """Replay a batch through the trained FD: the imagination-averaged error of each step.

        A diagnostic (the rewards themselves are scored while acting): the
        replay starts from a zero recurrent state and uses the trained model.

        Returns:
            ``(T, E)`` ``e_t`` of each transition's next observation (0 where ``dones``).
        """
        assert isinstance(self.model, ForwardModel)
        latents = self.latents(batch.observations)
        next_latents = self.latents(batch.next_observations)
        dones = batch.dones.to(self.device, torch.bool)
        errors, valid, _ = imagination_errors(
            self.model,
            latents,
            self.encode_actions(batch.actions),
            next_latents,
            dones,
            self._zero_train_hidden(int(dones.shape[1])),
            self.steps,
        )
        return combine_errors(errors, valid, self.imagination.table)


class AdversarialCuriosity(ImaginationCuriosity):
    """``adversarial``: reward = the FD's imagination-averaged prediction error of ``o_t``."""

    def _reward(self, error: Tensor, starts: Tensor) -> Tensor:
        return torch.where(starts, torch.zeros_like(error), error)


class DeltaMinimizeCuriosity(ImaginationCuriosity):
    """``delta-minimize``: reward ``-(e_t - e_{t-1})``, for steps that became more predictable.

    ``e_{t-1}`` is kept per world; the first scored step (of the run or of an
    episode) earns 0.
    """

    def __init__(
        self,
        options: ImaginationOptions,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
        device: str,
    ) -> None:
        """Build the FD core and an empty error memory (see :class:`ImaginationCuriosity`)."""
        super().__init__(options, observation_spec, action_spec, device)
        self.previous_error: Tensor | None = None
        self.has_previous: Tensor | None = None

    def _agent_start(self, latent: Tensor) -> None:
        super()._agent_start(latent)
        envs = latent.shape[0]
        self.previous_error = latent.new_zeros(envs)
        self.has_previous = torch.zeros(envs, dtype=torch.bool, device=latent.device)

    def _reward(self, error: Tensor, starts: Tensor) -> Tensor:
        assert self.previous_error is not None and self.has_previous is not None
        scored = self.has_previous & ~starts
        reward = torch.where(scored, -(error - self.previous_error), torch.zeros_like(error))
        self.previous_error = torch.where(starts, torch.zeros_like(error), error)
        self.has_previous = ~starts
        return reward

    def _agent_state(self) -> dict[str, Any]:
        return {
            **super()._agent_state(),
            "previous_error": None if self.previous_error is None else self.previous_error.clone(),
            "has_previous": None if self.has_previous is None else self.has_previous.clone(),
        }

    def _load_agent_state(self, state: dict[str, Any]) -> None:
        super()._load_agent_state(state)
        previous, has = state["previous_error"], state["has_previous"]
        self.previous_error = None if previous is None else previous.to(self.device).clone()
        self.has_previous = None if has is None else has.to(self.device).clone()
