"""``meta``: forward-dynamics levels, each predicting what the levels below left unexplained.

Online like the rest of the family: the reward of the transition into ``o_t``
is computed in :meth:`~pamiqx.api.Curiosity.agent_step` when ``o_t`` arrives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from pamiqx.api import ActionSpec, ObservationSpec, Transitions, one_hot_width
from pamiqx_fd_curiosity.base import ForwardDynamicsCuriosity
from pamiqx_fd_curiosity.networks import (
    ForwardModel,
    build_forward_model,
    latent_width,
    standardise,
)

if TYPE_CHECKING:
    from pamiqx_fd_curiosity.fd_options import MetaOptions


def meta_coefficients(preset: str, levels: int) -> list[float]:
    """Return the per-level reward coefficients ``c_i`` of a preset.

    Args:
        preset: ``maximize_top`` (``[-1, ..., -1, +1]``), ``all_minimize`` (all -1),
            ``all_maximize`` (all +1) or ``linear`` (-1 at the bottom to +1 at the top).
        levels: ``L``.

    Returns:
        ``L`` coefficients, bottom level first.

    Raises:
        ValueError: For an unknown preset.
    """
    if preset == "maximize_top":
        return [-1.0] * (levels - 1) + [1.0]
    if preset == "all_minimize":
        return [-1.0] * levels
    if preset == "all_maximize":
        return [1.0] * levels
    if preset == "linear":
        if levels == 1:
            return [-1.0]
        return [-1.0 + 2.0 * i / (levels - 1) for i in range(levels)]
    raise ValueError(f"unknown coefficient preset {preset!r}")


def meta_targets(predictions: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """The meta cascade: each level's standardised target and its squared residual.

    ``τ_0 = o_{t+1}``; level ``i`` standardises ``τ_i`` (its training target),
    ``δ_i = std(τ_i) - ô_i`` and ``τ_{i+1} = δ_i``.

    Args:
        predictions: ``(L, ..., D)`` each level's prediction ``ô_i``.
        target: ``(..., D)`` the latent that arrived.

    Returns:
        ``(L, ..., D)`` standardised targets and ``(L, ...)`` ``mean(δ_i^2)``.
    """
    targets, squared = [], []
    tau = target
    for i in range(predictions.shape[0]):
        standardised = standardise(tau)
        delta = standardised - predictions[i]
        targets.append(standardised)
        squared.append(delta.pow(2).mean(dim=-1))
        tau = delta
    return torch.stack(targets), torch.stack(squared)


class MetaCuriosity(ForwardDynamicsCuriosity):
    """``meta``: L FD levels, each predicting what the levels below left unexplained.

    Every level sees the same input ``(o_t, a_t, g_i)``. Reward
    ``sum_i c_i * mean(δ_i^2)``. No imagination (K=1): each level's 1-step
    prediction is scored, as each level's target depends on the residuals of
    the levels below at the same step.

    Attributes:
        levels: ``L``.
        coefficients: ``(L,)`` ``c_i``.
        last_components: ``(L, E)`` the coefficient-scaled per-level rewards of
            the last agent step (a diagnostic).
    """

    def __init__(
        self,
        options: MetaOptions,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
        device: str,
    ) -> None:
        """Build the L FD levels and their optimizer on ``device``.

        Args:
            options: The plugin's options.
            observation_spec: The latents ``o_t`` (vectors or tokens) the representation
                stage hands over.
            action_spec: The action space.
            device: Where everything lives.
        """
        width = latent_width(observation_spec)
        models = [
            build_forward_model(options, width, one_hot_width(action_spec.nvec))
            for _ in range(options.num_meta_levels)
        ]
        levels = nn.ModuleList(models)
        super().__init__(observation_spec, levels, action_spec, device, options)
        self.hidden_dim = models[0].hidden_dim
        self.levels = options.num_meta_levels
        self.coefficients = torch.tensor(
            meta_coefficients(options.coefficients, self.levels), device=self.device
        )
        self.latent: Tensor | None = None
        self.hidden: Tensor | None = None
        self.last_components: Tensor | None = None

    def _levels(self, module: nn.Module) -> list[ForwardModel]:
        assert isinstance(module, nn.ModuleList)
        return [level for level in module if isinstance(level, ForwardModel)]

    def _agent_ready(self, num_envs: int) -> bool:
        return self.latent is not None and self.latent.shape[0] == num_envs

    def _agent_start(self, latent: Tensor) -> None:
        self.latent = latent.clone()
        self.hidden = latent.new_zeros(self.levels, latent.shape[0], self.hidden_dim)

    def _agent_reward(self, latent: Tensor, action: Tensor, starts: Tensor) -> Tensor:
        assert self.latent is not None and self.hidden is not None
        predictions, hiddens = [], []
        for i, level in enumerate(self._levels(self.agent_model)):
            prediction, hidden = level(self.latent, action, self.hidden[i])
            predictions.append(prediction)
            hiddens.append(hidden)
        targets, squared = meta_targets(torch.stack(predictions), latent)
        # Each level's target as computed now, from the acting predictions of the
        # levels below, is what it trains on (the reference stores it with the step).
        self._remember(
            {
                "latent": self.latent,
                "action": action,
                "hidden": self.hidden.transpose(0, 1),
                "targets": targets.transpose(0, 1),
                "done": starts,
            }
        )
        components = self.coefficients.unsqueeze(-1) * squared * (~starts).to(squared.dtype)
        keep = (~starts).to(latent.dtype).unsqueeze(-1)
        self.latent = latent.clone()
        self.hidden = torch.stack(hiddens) * keep
        self.last_components = components
        for i in range(self.levels):
            self._record(f"reward_level{i}", components[i], ~starts)
        return components.sum(dim=0)

    def _agent_state(self) -> dict[str, Any]:
        return {
            "latent": None if self.latent is None else self.latent.clone(),
            "hidden": None if self.hidden is None else self.hidden.clone(),
        }

    def _load_agent_state(self, state: dict[str, Any]) -> None:
        latent, hidden = state["latent"], state["hidden"]
        self.latent = None if latent is None else latent.to(self.device).clone()
        self.hidden = None if hidden is None else hidden.to(self.device).clone()

    def _zero_train_hidden(self, num_envs: int) -> Tensor:
        return torch.zeros(self.levels, num_envs, self.hidden_dim, device=self.device)

    def _run_levels(
        self, latents: Tensor, actions: Tensor, dones: Tensor, hidden: Tensor
    ) -> tuple[Tensor, Tensor]:
        predictions, lasts = [], []
        for i, level in enumerate(self._levels(self.model)):
            prediction, _, last = level.run_window(latents, actions, dones, hidden[i])
            predictions.append(prediction)
            lasts.append(last)
        return torch.stack(predictions), torch.stack(lasts)

    def _loss(
        self,
        latents: Tensor,
        actions: Tensor,
        next_latents: Tensor,
        dones: Tensor,
        hidden: Tensor,
    ) -> tuple[Tensor, dict[str, float], Tensor]:
        predictions, last = self._run_levels(latents, actions, dones, hidden)
        # Targets are data: no gradient flows from a level's target into the levels below.
        with torch.no_grad():
            targets, _ = meta_targets(predictions.detach(), next_latents)
        loss, metrics = self._level_loss(predictions, targets, dones)
        return loss, metrics, last

    def _window_loss(self, window: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Each level's 1-step MSE against the targets stored at acting time.

        As the reference's ``HiddenStateFDTrainerExplicitTarget``: a level's
        window starts from that level's stored state.
        """
        latents, actions, dones = window["latent"], window["action"], window["done"]
        hidden = window["hidden"][0].transpose(0, 1)  # (L, W, H)
        targets = window["targets"].movedim(2, 0)  # (L, S, W, D)
        predictions = torch.stack(
            [
                level.run_window(latents, actions, dones, hidden[i])[0]
                for i, level in enumerate(self._levels(self.model))
            ]
        )
        return self._level_loss(predictions, targets, dones)

    def _level_loss(
        self, predictions: Tensor, targets: Tensor, dones: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        valid = (~dones).to(predictions.dtype)
        count = valid.sum().clamp_min(1.0)
        per_level = (predictions - targets).pow(2).mean(dim=-1).mul(valid).sum(dim=(1, 2)) / count
        loss = per_level.sum()
        metrics = {"loss": float(loss.detach())}
        metrics.update({f"loss_level{i}": float(v) for i, v in enumerate(per_level.detach())})
        return loss, metrics

    @torch.no_grad()
    def level_rewards(self, batch: Transitions) -> Tensor:
        """Replay a batch through the trained levels: each level's reward component.

        A diagnostic (the rewards themselves are scored while acting): the
        replay starts from a zero recurrent state and uses the trained models.

        Returns:
            ``(L, T, E)`` ``c_i * mean(δ_i^2)`` of each transition (0 where ``dones``).
        """
        latents = self.latents(batch.observations)
        next_latents = self.latents(batch.next_observations)
        dones = batch.dones.to(self.device, torch.bool)
        predictions, _ = self._run_levels(
            latents,
            self.encode_actions(batch.actions),
            dones,
            self._zero_train_hidden(int(dones.shape[1])),
        )
        _, squared = meta_targets(predictions, next_latents)
        return self.coefficients.view(-1, 1, 1) * squared * (~dones).to(squared.dtype)
