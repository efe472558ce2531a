"""The policy network of ``hierarchical``: every layer's forward dynamics and policy.

The design (timescales, reward, timing inside a step, the flat state) is
described in :mod:`pamiqx_fd_curiosity.hierarchical`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pamiqx.api import (
    ActionDistribution,
    ActionSpec,
    DiscreteHead,
    MultiDiscreteHead,
    PolicyNetwork,
    PolicyStep,
    ValueHeads,
    one_hot_actions,
    one_hot_width,
)
from pamiqx_fd_curiosity.hierarchical_layers import HeldGoals, Layer, LayerStep
from pamiqx_fd_curiosity.owned import INTERNAL_LOG_STD_RANGE, StateLayout


class HierarchicalNetwork(PolicyNetwork):
    """The layers of ``hierarchical`` as one policy network.

    The design is described in :mod:`pamiqx_fd_curiosity.hierarchical`.

    Attributes:
        num_layers: ``L``.
        periods: ``period**i`` of each layer.
        coefficients: ``c_i``, linear from -1 (bottom) to +1 (top).
        layout: The named parts of the flat state.
    """

    def __init__(
        self,
        encoder: nn.Module,
        latent_dim: int,
        action_spec: ActionSpec,
        num_layers: int,
        period: int,
        hidden_dim: int,
        goal_dim: int,
        blend: float,
        prediction_coef: float,
    ) -> None:
        """Build the layers and the heads.

        Args:
            encoder: Observations ``(B, ...)`` to latents ``(B, latent_dim)``.
            latent_dim: Width of layer 0's observation.
            action_spec: The world's action space (layer 0's action).
            num_layers: ``L`` (at least 2).
            period: Timescale ratio between layers (at least 2).
            hidden_dim: Width of every FD and policy GRU state.
            goal_dim: Width of an upper layer's latent action.
            blend: Share of the layer above in a layer's reward.
            prediction_coef: Weight of the prediction losses.

        Raises:
            ValueError: If ``num_layers`` or ``period`` is below 2.
        """
        super().__init__()
        if num_layers < 2 or period < 2:
            raise ValueError(f"need num_layers >= 2 and period >= 2, got {num_layers}, {period}")
        self.encoder = encoder
        self.nvec = action_spec.nvec
        self.discrete = action_spec.kind == "discrete"
        self.num_layers = num_layers
        self.periods = [period**i for i in range(num_layers)]
        self.cycle = self.periods[-1]
        self.hidden_size = hidden_dim
        self.goal_dim = goal_dim
        self.blend = blend
        self.prediction_coef = prediction_coef
        self.coefficients = [-1.0 + 2.0 * i / (num_layers - 1) for i in range(num_layers)]
        self.internal_action_dim = (num_layers - 1) * goal_dim
        action_width = one_hot_width(action_spec.nvec)
        self.obs_dims = [latent_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(
            Layer(self.obs_dims[i], action_width if i == 0 else goal_dim, goal_dim, hidden_dim)
            for i in range(num_layers)
        )
        widths = {"step": 1, "action": action_width}
        for i, obs_dim in enumerate(self.obs_dims):
            widths.update({f"fd{i}": hidden_dim, f"pred{i}": obs_dim, f"valid{i}": 1})
            widths[f"pi{i}"] = hidden_dim
            if i > 0:
                widths[f"goal{i}"] = goal_dim
        self.layout = StateLayout(widths)
        self.actor: nn.Module = (
            DiscreteHead(hidden_dim, self.nvec[0])
            if action_spec.kind == "discrete"
            else MultiDiscreteHead(hidden_dim, self.nvec)
        )
        self.values = ValueHeads(hidden_dim)
        self.goal_means = nn.ModuleList(
            nn.Linear(hidden_dim, goal_dim) for _ in range(num_layers - 1)
        )
        self.goal_log_std = nn.Parameter(torch.zeros(num_layers - 1, goal_dim))

    @property
    def is_recurrent(self) -> bool:
        """Always recurrent."""
        return True

    @property
    def hidden_dim(self) -> int:
        """Width of the flat state."""
        return self.layout.width

    def encode(self, obs: Tensor) -> Tensor:
        """Return layer 0's observation ``x_0`` (float32) for ``(N, ...)`` observations."""
        latent: Tensor = self.encoder(obs)
        return latent.float()

    def _layer(self, i: int) -> Layer:
        layer = self.layers[i]
        assert isinstance(layer, Layer)
        return layer

    def _acting(self, state: Tensor) -> list[Tensor]:
        counter = state[:, self.layout.slice("step")].squeeze(-1)
        return [torch.remainder(counter, p) < 0.5 for p in self.periods]

    def _goal_mean(self, i: int, features: Tensor) -> Tensor:
        mean: Tensor = self.goal_means[i - 1](features)
        return mean

    def step_layers(self, latent: Tensor, state: Tensor) -> LayerStep:
        """Run the forward part of one step (``state`` already reset where episodes start).

        Args:
            latent: ``(B, latent_dim)`` layer 0's observation ``x_0``.
            state: ``(B, hidden_dim)`` float32 state before the step.

        Returns:
            The per-layer results and the state to hand to :meth:`advance`.
        """
        parts = self.layout.split(state)
        new = dict(parts)
        acting = self._acting(state)
        features, observations, errors, scored, held = [], [], [], [], []
        x = latent.detach()
        for i in range(self.num_layers):
            layer = self._layer(i)
            act = acting[i].unsqueeze(-1)
            observations.append(x)
            errors.append((parts[f"pred{i}"] - x).pow(2).mean(dim=-1))
            scored.append(acting[i] & (parts[f"valid{i}"].squeeze(-1) > 0.5))
            previous = parts["action"] if i == 0 else parts[f"goal{i}"]
            fd = layer.fd_cell(torch.cat([x, previous], dim=-1), parts[f"fd{i}"])
            new[f"fd{i}"] = torch.where(act, fd, parts[f"fd{i}"])
            top = i == self.num_layers - 1
            goal = torch.zeros_like(parts["goal1"]) if top else parts[f"goal{i + 1}"]
            policy = layer.policy_cell(torch.cat([x, goal], dim=-1), parts[f"pi{i}"])
            new[f"pi{i}"] = torch.where(act, policy, parts[f"pi{i}"])
            features.append(new[f"pi{i}"])
            if i > 0:
                held.append(parts[f"goal{i}"])
            # The layer above observes this FD state as data: its loss must not shape it.
            x = F.layer_norm(new[f"fd{i}"], (self.hidden_size,)).detach()
        reward = torch.zeros_like(errors[0])
        for i in reversed(range(self.num_layers)):
            own = self.coefficients[i] * errors[i].detach() * scored[i].to(reward.dtype)
            reward = (
                own if i == self.num_layers - 1 else (1 - self.blend) * own + self.blend * reward
            )
        return LayerStep(
            state=self.layout.join(new),
            features=features,
            observations=observations,
            errors=errors,
            acting=acting,
            scored=scored,
            held=held,
            reward=reward.detach(),
        )

    def advance(self, state: Tensor, actions: Tensor, internal: Tensor | None) -> Tensor:
        """Store the step's actions, predict each acting layer's next observation, count the step.

        Args:
            state: ``(B, hidden_dim)`` float32 state after :meth:`step_layers`.
            actions: The world's actions of this step.
            internal: ``(B, Z)`` latent actions of this step, or None for the upper
                layers' means (only the acting layers' columns are read).

        Returns:
            The state before the next step.
        """
        parts = dict(self.layout.split(state))
        acting = self._acting(state)
        world = one_hot_actions(actions, self.nvec, self.discrete).to(state.dtype)
        for i in range(self.num_layers):
            act = acting[i].unsqueeze(-1)
            if i == 0:
                action = world
            else:
                if internal is None:
                    # Acting at the mean is data for the FD: its loss must not move the policy.
                    chosen = self._goal_mean(i, parts[f"pi{i}"]).detach()
                else:
                    chosen = internal[:, (i - 1) * self.goal_dim : i * self.goal_dim]
                action = torch.where(act, chosen.to(state.dtype), parts[f"goal{i}"])
                parts[f"goal{i}"] = action
            prediction = self._layer(i).fd_head(torch.cat([parts[f"fd{i}"], action], dim=-1))
            parts[f"pred{i}"] = torch.where(act, prediction, parts[f"pred{i}"])
            parts[f"valid{i}"] = torch.where(
                act, torch.ones_like(parts[f"valid{i}"]), parts[f"valid{i}"]
            )
        parts["action"] = world
        counter = parts["step"]
        parts["step"] = torch.remainder(counter + 1, self.cycle)
        return self.layout.join(parts)

    def _heads(
        self, features: list[Tensor], acting: list[Tensor], held: list[Tensor]
    ) -> tuple[ActionDistribution, dict[str, Tensor], HeldGoals]:
        """Apply the heads to per-layer ``(N, H)`` features, acting masks and held goals."""
        dist: ActionDistribution = self.actor(features[0])
        values: dict[str, Tensor] = self.values(features[0])
        means, stds, masks = [], [], []
        log_std = self.goal_log_std.clamp(*INTERNAL_LOG_STD_RANGE).exp()
        for i in range(1, self.num_layers):
            mean = self._goal_mean(i, features[i])
            means.append(mean)
            stds.append(log_std[i - 1].expand_as(mean))
            masks.append(acting[i].unsqueeze(-1).expand_as(mean))
        goals = HeldGoals(
            torch.cat(means, dim=-1),
            torch.cat(stds, dim=-1),
            torch.cat(masks, dim=-1),
            torch.cat(held, dim=-1),
        )
        return dist, values, goals

    def forward(self, obs: Tensor, hidden: Tensor, reset: Tensor | None = None) -> PolicyStep:
        """Act on ``(B, ...)`` observations; the intrinsic reward is layer 0's blended ``r_0``."""
        with torch.autocast(obs.device.type, enabled=False):
            state = hidden.float()
            if reset is not None:
                state = state * (~reset.bool()).to(state.dtype).unsqueeze(-1)
            step = self.step_layers(self.encode(obs), state)
            dist, values, goals = self._heads(step.features, step.acting, step.held)
            return PolicyStep(dist, values, step.state, goals, intrinsic=step.reward)

    def fold_action(self, hidden: Tensor, actions: Tensor, internal: Tensor | None) -> Tensor:
        """Store the sampled actions (new latent actions only where their layer acted)."""
        with torch.autocast(hidden.device.type, enabled=False):
            return self.advance(
                hidden.float(), actions, None if internal is None else internal.float()
            )

    def forward_sequence(
        self,
        obs: Tensor,
        hidden0: Tensor,
        resets: Tensor | None,
        actions: Tensor,
        internal: Tensor | None,
    ) -> PolicyStep:
        """Replay a window; the aux loss is the error of the predictions made inside it."""
        steps, batch = obs.shape[0], obs.shape[1]
        layers = range(self.num_layers)
        with torch.autocast(obs.device.type, enabled=False):
            latents = self.encode(obs.reshape(steps * batch, *obs.shape[2:]))
            latents = latents.reshape(steps, batch, -1)
            state = hidden0.float()
            # Which rows' pending prediction of each layer was made inside the window.
            made = [torch.zeros(batch, dtype=torch.bool, device=obs.device) for _ in layers]
            features: list[list[Tensor]] = [[] for _ in layers]
            acting: list[list[Tensor]] = [[] for _ in layers]
            errors: list[list[Tensor]] = [[] for _ in layers]
            masks: list[list[Tensor]] = [[] for _ in layers]
            held: list[list[Tensor]] = [[] for _ in range(1, self.num_layers)]
            rewards = []
            for t in range(steps):
                if resets is not None:
                    keep = ~resets[t].bool()
                    state = state * keep.to(state.dtype).unsqueeze(-1)
                    made = [m & keep for m in made]
                step = self.step_layers(latents[t], state)
                for i in layers:
                    features[i].append(step.features[i])
                    acting[i].append(step.acting[i])
                    errors[i].append(step.errors[i])
                    masks[i].append(step.scored[i] & made[i])
                for i, goal in enumerate(step.held):
                    held[i].append(goal)
                rewards.append(step.reward)
                state = self.advance(
                    step.state, actions[t], None if internal is None else internal[t].float()
                )
                made = [m | a for m, a in zip(made, step.acting, strict=True)]
            dist, values, goals = self._heads(
                [torch.cat(f) for f in features],
                [torch.cat(a) for a in acting],
                [torch.cat(h) for h in held],
            )
            # Keeps the graph connected when a window holds no scored prediction.
            aux = self._layer(0).fd_head.weight.sum() * 0.0
            metrics = {"hierarchical/reward": float(torch.stack(rewards).mean())}
            for i in layers:
                error, mask = torch.stack(errors[i]), torch.stack(masks[i]).to(state.dtype)
                count = mask.sum()
                if float(count) > 0:
                    loss = (error * mask).sum() / count
                    aux = aux + self.prediction_coef * loss
                    metrics[f"hierarchical/error_{i}"] = float(loss.detach())
            return PolicyStep(dist, values, state, goals, aux_loss=aux, metrics=metrics)
