"""The policy network of ``hierarchical``: every layer's forward dynamics and policy.

The design (timescales, reward, timing inside a step, the flat state) is
described in :mod:`pamiqx_fd_curiosity.hierarchical`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pamiqx.api import (
    ActionSpec,
    DiscreteHead,
    MultiDiscreteHead,
    PolicyNetwork,
    PolicyStep,
    ValueHeads,
    one_hot_actions,
    one_hot_width,
)
from pamiqx_fd_curiosity.hierarchical_heads import LayerHeads
from pamiqx_fd_curiosity.hierarchical_imagination import LayerImagination
from pamiqx_fd_curiosity.hierarchical_layers import CoreSpec, Layer, LayerStep
from pamiqx_fd_curiosity.hierarchical_parts import (
    build_layers,
    group_value_heads,
    state_layout,
    stores_fd_output,
)


class HierarchicalNetwork(LayerHeads, PolicyNetwork):
    """The layers of ``hierarchical`` as one policy network.

    The design is described in :mod:`pamiqx_fd_curiosity.hierarchical`.

    Attributes:
        num_layers: ``L``.
        periods: ``period**i`` of each layer.
        coefficients: ``c_i``, linear from -1 (bottom) to +1 (top).
        widths: Each layer's core width.
        obs_dims: Each layer's observation width.
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
        *,
        core: Literal["gru", "qgru", "qlstm"] = "gru",
        core_depth: int = 2,
        core_ff_ratio: float = 4.0,
        layer_width_step: int = 0,
        goal_std: Literal["state", "parameter"] = "parameter",
        hold_upper_reward: bool = False,
        fd_condition: Literal["action", "policy"] = "action",
        max_imagination_steps: int = 1,
        fd_predictor: Literal["linear", "swiglu"] = "linear",
        tokens: tuple[int, int] | None = None,
        upper_policy_training: Literal["joint", "own-ppo"] = "joint",
    ) -> None:
        """Build the layers and the heads.

        Args:
            encoder: Observations ``(B, ...)`` to latents ``(B, latent_dim)``.
            latent_dim: Width of layer 0's observation.
            action_spec: The world's action space (layer 0's action).
            num_layers: ``L`` (at least 2).
            period: Timescale ratio between layers (at least 2).
            hidden_dim: Width of layer 0's cores.
            goal_dim: Width of an upper layer's latent action.
            blend: Share of the layer above in a layer's reward.
            prediction_coef: Weight of the prediction losses.
            core: ``gru``, ``qgru`` or ``qlstm`` (both cores of every layer).
            core_depth: Blocks of a stack.
            core_ff_ratio: Feed-forward ratio of a stack's blocks.
            layer_width_step: Layer ``i``'s width is ``hidden_dim + layer_width_step * i``.
            goal_std: ``state`` or ``parameter`` std of the latent actions.
            hold_upper_reward: Hold an upper layer's reward over its period.
            fd_condition: ``action`` or ``policy`` (see ``HierarchicalOptions``).
            max_imagination_steps: ``K`` of the forward dynamics' training.
            fd_predictor: ``linear`` or ``swiglu`` prediction head.
            tokens: ``(N, D)`` of a token latent that layer 0's cores mix
                (:class:`~pamiqx_fd_curiosity.hierarchical_layers.TokenLerp`), or None.
            upper_policy_training: ``joint`` or ``own-ppo`` (each upper layer a policy
                group of the host's PPO with its own reward and value head).

        Raises:
            ValueError: If ``num_layers`` or ``period`` is below 2, or ``K`` below 1.
        """
        super().__init__()
        if num_layers < 2 or period < 2:
            raise ValueError(f"need num_layers >= 2 and period >= 2, got {num_layers}, {period}")
        if max_imagination_steps < 1:
            raise ValueError(f"max_imagination_steps must be >= 1, got {max_imagination_steps}")
        self.encoder = encoder
        self.nvec = action_spec.nvec
        self.discrete = action_spec.kind == "discrete"
        self.num_layers = num_layers
        self.periods = [period**i for i in range(num_layers)]
        self.cycle = self.periods[-1]
        self.goal_dim = goal_dim
        self.blend = blend
        self.prediction_coef = prediction_coef
        self.hold_upper_reward = hold_upper_reward
        self.fd_condition = fd_condition
        self.imagination_steps = max_imagination_steps
        self.coefficients = [-1.0 + 2.0 * i / (num_layers - 1) for i in range(num_layers)]
        self.internal_action_dim = (num_layers - 1) * goal_dim
        action_width = one_hot_width(action_spec.nvec)
        self.widths = [hidden_dim + layer_width_step * i for i in range(num_layers)]
        self.obs_dims = [latent_dim, *self.widths[:-1]]
        layers = build_layers(
            self.widths,
            self.obs_dims,
            CoreSpec(core, hidden_dim, core_depth, core_ff_ratio),
            action_width,
            goal_dim,
            fd_condition,
            fd_predictor,
            tokens,
        )
        self.layers = nn.ModuleList(layers)
        self.layout = state_layout(
            layers, self.obs_dims, action_width, goal_dim, fd_condition, hold_upper_reward
        )
        self.actor: nn.Module = (
            DiscreteHead(self.widths[0], self.nvec[0])
            if action_spec.kind == "discrete"
            else MultiDiscreteHead(self.widths[0], self.nvec)
        )
        self.values = ValueHeads(self.widths[0])
        self.goal_means = nn.ModuleList(nn.Linear(w, goal_dim) for w in self.widths[1:])
        # ``state``: the reference's FCNormalHead std; ``parameter``: one log-std per layer.
        self.goal_stds = (
            nn.ModuleList(nn.Linear(w, goal_dim) for w in self.widths[1:])
            if goal_std == "state"
            else None
        )
        self.goal_log_std = (
            nn.Parameter(torch.zeros(num_layers - 1, goal_dim)) if goal_std == "parameter" else None
        )
        # Built last and only for own-ppo, so that joint networks draw the same weights.
        self.group_value_heads = (
            group_value_heads(self.widths[1:]) if upper_policy_training == "own-ppo" else None
        )
        if self.group_value_heads is not None:
            self.internal_groups = (goal_dim,) * (num_layers - 1)

    def _stores_fd_output(self, i: int) -> bool:
        return stores_fd_output(self._layer(i), self.fd_condition)

    @property
    def is_recurrent(self) -> bool:
        """Always recurrent."""
        return True

    @property
    def hidden_dim(self) -> int:
        """Width of the flat state."""
        return self.layout.width

    def _dtype(self) -> torch.dtype:
        # The head's weight gives the dtype the network was cast to (float32 unless a test asks).
        return self._layer(0).fd_head.weight.dtype

    def encode(self, obs: Tensor) -> Tensor:
        """Return layer 0's observation ``x_0`` (in the network's dtype) for ``(N, ...)`` ones."""
        latent: Tensor = self.encoder(obs)
        return latent.to(self._dtype())

    def _layer(self, i: int) -> Layer:
        layer = self.layers[i]
        assert isinstance(layer, Layer)
        return layer

    def _acting(self, state: Tensor) -> list[Tensor]:
        counter = state[:, self.layout.slice("step")].squeeze(-1)
        return [torch.remainder(counter, p) < 0.5 for p in self.periods]

    def step_layers(self, latent: Tensor, state: Tensor) -> LayerStep:
        """Run the forward part of one step (``state`` already reset where episodes start).

        Args:
            latent: ``(B, latent_dim)`` layer 0's observation ``x_0``.
            state: ``(B, hidden_dim)`` state before the step (the network's dtype).

        Returns:
            The per-layer results and the state to hand to :meth:`advance`.
        """
        parts = self.layout.split(state)
        new = dict(parts)
        acting = self._acting(state)
        features, observations, conditions, errors, scored, held = [], [], [], [], [], []
        x = latent.detach()
        for i in range(self.num_layers):
            layer = self._layer(i)
            act = acting[i].unsqueeze(-1)
            observations.append(x)
            errors.append((parts[f"pred{i}"] - x).pow(2).mean(dim=-1))
            scored.append(acting[i] & (parts[f"valid{i}"].squeeze(-1) > 0.5))
            top = i == self.num_layers - 1
            goal = torch.zeros_like(parts["goal1"]) if top else parts[f"goal{i + 1}"]
            output, policy = layer.policy_step(x, goal, parts[f"pi{i}"])
            new[f"pi{i}"] = torch.where(act, policy, parts[f"pi{i}"])
            features.append(output)
            if i > 0:
                held.append(parts[f"goal{i}"])
            if self.fd_condition == "policy":
                # The policy's latent is data for the FD: its loss must not shape the policy.
                condition = output.detach()
            else:
                condition = parts["action"] if i == 0 else parts[f"goal{i}"]
            conditions.append(condition)
            fd_output, fd = layer.fd_step(x, condition, parts[f"fd{i}"])
            new[f"fd{i}"] = torch.where(act, fd, parts[f"fd{i}"])
            if self._stores_fd_output(i):
                new[f"fdout{i}"] = torch.where(act, fd_output, parts[f"fdout{i}"])
            if self.fd_condition == "policy":
                prediction = layer.predict(fd_output, None)
                new[f"pred{i}"] = torch.where(act, prediction, parts[f"pred{i}"])
                new[f"valid{i}"] = torch.where(act, 1.0, parts[f"valid{i}"])
            # The layer above observes this FD output as data: its loss must not shape it.
            x = F.layer_norm(fd_output, fd_output.shape[-1:]).detach()
        upper = torch.zeros_like(errors[0])
        rewards: list[Tensor] = []
        for i in reversed(range(self.num_layers)):
            own = self.coefficients[i] * errors[i].detach() * scored[i].to(upper.dtype)
            reward = (
                own if i == self.num_layers - 1 else (1 - self.blend) * own + self.blend * upper
            )
            if self.hold_upper_reward and i > 0:
                # Between its acting steps the layer's last blended reward is held.
                held_reward = parts[f"reward{i}"].squeeze(-1)
                reward = torch.where(acting[i], reward, held_reward)
                new[f"reward{i}"] = reward.unsqueeze(-1)
            upper = reward
            rewards.insert(0, reward.detach())
        return LayerStep(
            state=self.layout.join(new),
            features=features,
            observations=observations,
            conditions=conditions,
            errors=errors,
            acting=acting,
            scored=scored,
            held=held,
            reward=upper.detach(),
            rewards=rewards,
        )

    def advance(self, state: Tensor, actions: Tensor, internal: Tensor | None) -> Tensor:
        """Store the step's actions, predict each acting layer's next observation, count the step.

        Args:
            state: ``(B, hidden_dim)`` state after :meth:`step_layers`.
            actions: The world's actions of this step.
            internal: ``(B, Z)`` latent actions of this step (only the acting layers'
                columns are read), or None to keep the held ones.

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
                held = parts[f"goal{i}"]
                if internal is not None:
                    chosen = internal[:, (i - 1) * self.goal_dim : i * self.goal_dim]
                    held = torch.where(act, chosen.to(state.dtype), held)
                parts[f"goal{i}"] = action = held
            if self.fd_condition == "action":
                # The action of the step enters the prediction through the head.
                output = parts[f"fdout{i}" if self._stores_fd_output(i) else f"fd{i}"]
                prediction = self._layer(i).predict(output, action)
                parts[f"pred{i}"] = torch.where(act, prediction, parts[f"pred{i}"])
                parts[f"valid{i}"] = torch.where(act, 1.0, parts[f"valid{i}"])
        parts["action"] = world
        parts["step"] = torch.remainder(parts["step"] + 1, self.cycle)
        return self.layout.join(parts)

    def forward(self, obs: Tensor, hidden: Tensor, reset: Tensor | None = None) -> PolicyStep:
        """Act on ``(B, ...)`` observations; the intrinsic reward is layer 0's blended ``r_0``.

        With ``own-ppo`` the upper layers' blended rewards ``r_i`` (read by the host
        at their acting steps), values and acting masks are the policy groups'.
        """
        with torch.autocast(obs.device.type, enabled=False):
            state = hidden.to(self._dtype())
            if reset is not None:
                state = state * (~reset.bool()).to(state.dtype).unsqueeze(-1)
            step = self.step_layers(self.encode(obs), state)
            dist, values, goals = self.heads(step.features, step.acting, step.held)
            group_values, group_acting = self._group_outputs(step.features, step.acting)
            group_rewards = None
            if group_values is not None:
                group_rewards = torch.stack(step.rewards[1:], dim=-1)
            return PolicyStep(
                dist,
                values,
                step.state,
                goals,
                intrinsic=step.reward,
                group_rewards=group_rewards,
                group_values=group_values,
                group_acting=group_acting,
            )

    def fold_action(self, hidden: Tensor, actions: Tensor, internal: Tensor | None) -> Tensor:
        """Store the sampled actions (new latent actions only where their layer acted)."""
        with torch.autocast(hidden.device.type, enabled=False):
            dtype = self._dtype()
            return self.advance(
                hidden.to(dtype), actions, None if internal is None else internal.to(dtype)
            )

    def forward_sequence(
        self,
        obs: Tensor,
        hidden0: Tensor,
        resets: Tensor | None,
        actions: Tensor,
        internal: Tensor | None,
    ) -> PolicyStep:
        """Replay a window step by step, as acting does.

        The layers act at different steps per row (each row's counter, reset at its
        own episode starts), so the window is stepped through rather than scanned.
        The aux loss is the FD error of the predictions made inside the window
        (with ``K > 1`` also of their imagined continuations).
        """
        steps, batch = obs.shape[0], obs.shape[1]
        layers = range(self.num_layers)
        with torch.autocast(obs.device.type, enabled=False):
            dtype = self._dtype()
            latents = self.encode(obs.reshape(steps * batch, *obs.shape[2:]))
            latents = latents.reshape(steps, batch, -1)
            state = hidden0.to(dtype)
            # Which rows' pending prediction of each layer was made inside the window.
            made = [torch.zeros(batch, dtype=torch.bool, device=obs.device) for _ in layers]
            imagined = [LayerImagination(self.imagination_steps) for _ in layers]
            features: list[list[Tensor]] = [[] for _ in layers]
            acting: list[list[Tensor]] = [[] for _ in layers]
            errors: list[list[Tensor]] = [[] for _ in layers]
            masks: list[list[Tensor]] = [[] for _ in layers]
            held: list[list[Tensor]] = [[] for _ in range(1, self.num_layers)]
            rewards = []
            for t in range(steps):
                if resets is not None:
                    keep = ~resets[t].bool()
                    state = state * keep.to(dtype).unsqueeze(-1)
                    made = [m & keep for m in made]
                    for branches in imagined:
                        branches.reset(keep)
                step = self.step_layers(latents[t], state)
                for i in layers:
                    features[i].append(step.features[i])
                    acting[i].append(step.acting[i])
                    errors[i].append(step.errors[i])
                    masks[i].append(step.scored[i] & made[i])
                for i, goal in enumerate(step.held):
                    held[i].append(goal)
                rewards.append(step.reward)
                chosen = None if internal is None else internal[t].to(dtype)
                after = self.advance(step.state, actions[t], chosen)
                if self.imagination_steps > 1:
                    old, new = self.layout.split(state), self.layout.split(after)
                    with_action = self.fd_condition == "action"
                    for i, branches in enumerate(imagined):
                        branches.replay_step(self._layer(i), i, step, old, new, with_action)
                made = [m | a for m, a in zip(made, step.acting, strict=True)]
                state = after
            all_features = [torch.cat(f) for f in features]
            all_acting = [torch.cat(a) for a in acting]
            dist, values, goals = self.heads(all_features, all_acting, [torch.cat(h) for h in held])
            group_values, group_acting = self._group_outputs(all_features, all_acting)
            # Keeps the graph connected when a window holds no scored prediction.
            aux = self._layer(0).fd_head.weight.sum() * 0.0
            metrics = {"hierarchical/reward": float(torch.stack(rewards).mean())}
            for i in layers:
                loss, layer_metrics = imagined[i].loss(i, errors[i], masks[i])
                aux = aux + self.prediction_coef * loss
                metrics.update(layer_metrics)
            return PolicyStep(
                dist,
                values,
                state,
                goals,
                aux_loss=aux,
                metrics=metrics,
                group_values=group_values,
                group_acting=group_acting,
            )
