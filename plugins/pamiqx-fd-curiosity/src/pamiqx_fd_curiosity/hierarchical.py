"""``hierarchical``: layers of forward dynamics and policies acting at growing timescales.

``L`` layers (``num_layers``, 2 in the reference); layer ``i`` acts every
``period**i`` steps (1, 8). Each layer has its own latent forward-dynamics
model (a GRU cell and a linear head) and its own recurrent policy (a GRU cell
and heads):

* Layer 0 observes the latent ``x_0 = o_t`` of the frozen random encoder;
  layer ``i+1`` observes ``x_{i+1}``, the layer-normed (no affine) FD state of
  layer ``i``, sampled at the steps layer ``i+1`` acts.
* Each layer's policy takes ``[x_i, goal_i]``, where the goal is the latest
  latent action of the layer above (zeros at the top). Layer 0 emits the
  world's (multi-)discrete action; layer ``i >= 1`` emits a Gaussian latent
  action ``z_i`` (``goal_dim``). These are the network's *internal action*
  (``internal_action_dim = (L - 1) * goal_dim``, layer 1 first). A layer's
  latent action is held in the state between its acting steps and never
  resampled there; its log-probability and entropy count only at the steps
  it acts (:class:`HeldGoals`).
* Reward: at layer ``i``'s acting steps ``e_i = mean((x_i - x̂_i)^2)`` over
  latent dimensions, ``x̂_i`` predicted at its previous acting step; ``c``
  linear from -1 (bottom: minimise surprise) to +1 (top: seek it);
  ``r_top = c_top e_top`` and ``r_i = (1 - blend) c_i e_i + blend r_{i+1}``.
  The host gets layer 0's blended ``r_0`` as :attr:`PolicyStep.intrinsic`.

Timing inside one step ``t`` (the host samples the actions after ``forward``
and hands them back through ``fold_action``):

* ``forward``: for each acting layer, bottom up, score ``x_i`` against the
  pending prediction, advance the FD state with ``[x_i, a_i^prev]`` (``a^prev``
  the layer's previous action: the world's action ``a_{t-1}``, or the held
  ``z_i``) and the policy state with ``[x_i, goal_i]``. Layer ``i+1`` therefore
  observes layer ``i``'s FD state *after* it took in the observation that just
  arrived, as in the reference, where the upper layer steps after the lower.
* ``fold_action``: for each acting layer store its new action (a new ``z_i``
  replaces the held one) and predict the layer's next observation from
  ``[FD state, a_i]``: the action of the step enters the prediction through the
  head, since it is not known when the FD state advances. Then count the step.

Reward timing: an upper layer's reward counts only at its acting steps (between
them ``r_{i+1} = 0`` in the blend). Its error measures how the period that just
ended turned out, so it lands on the transition closing that period and the
discount carries it back to the actions of the period; holding it for the next
``period**i`` steps would credit steps that could not have caused it and weigh
the upper layer ``period**i`` times more than the bottom one. (The reference
holds the upper layer's last reward between its steps.) The first step after a
(re)start has no pending prediction: every layer's error counts 0 there (a
per-layer validity flag in the state). A layer below sees a new goal from the
step after the upper layer chose it (the host samples both actions together),
as in the reference, where the lower layer steps first.

Deviation from the reference: the reference trains each layer's policy with
its own PPO on its own blended reward ``r_i``. The host trains one PPO on one
intrinsic stream, so here the whole network (every layer's policy through the
joint log-probability of the world's and the latent actions) is trained on
layer 0's blended reward ``r_0``, which contains ``blend**i`` of each upper
layer's reward; the value heads (``ext``, ``int``) read layer 0's policy state.
The FD models are trained by the aux loss ``prediction_coef * sum_i mean(e_i)``
over the predictions made inside the training window (targets and the upper
layers' observations detached, so each FD learns only from its own error).

Flat state ``(B, hidden_dim)`` (see :attr:`HierarchicalNetwork.layout`):
``step`` (steps since the (re)start, modulo ``period**(L-1)``), ``action``
(one-hot ``a_{t-1}``), and per layer ``fd{i}`` (FD GRU state), ``pred{i}``
(pending prediction), ``valid{i}`` (a prediction is pending), ``pi{i}``
(policy GRU state) and, for ``i >= 1``, ``goal{i}`` (the held ``z_i``). A reset
zeroes a row, so every layer acts at the first step of an episode. The network
runs in float32 even under the host's bf16 autocast.

The reward mixes signs (the bottom layers minimise surprise), so the defining
property "a novel observation earns more than a familiar one" is checked on the
maximising part, the top layer's own error: see
:meth:`HierarchicalCuriosity.top_layer_errors`.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

from pamiqx.api import (
    ActionDistribution,
    ActionSpec,
    DiscreteHead,
    MultiDiscreteHead,
    ObservationSpec,
    PolicyNetwork,
    PolicyStep,
    Transitions,
    ValueHeads,
    one_hot_actions,
    one_hot_width,
)
from pamiqx_fd_curiosity.core import RandomEncoder
from pamiqx_fd_curiosity.owned import (
    INTERNAL_LOG_STD_RANGE,
    OwnedPolicyCuriosity,
    StateLayout,
)


class HeldGoals:
    """The upper layers' latent actions: Gaussian where a layer acts, held where it does not.

    Every method works on ``(B, Z)`` tensors, ``Z = (L - 1) * goal_dim``. Where a
    layer does not act, :meth:`sample` and :attr:`mean` return its held action and
    :meth:`log_prob` and :meth:`entropy` are 0, so PPO counts a latent action only
    at the step it was chosen.

    Attributes:
        normal: The layers' Gaussians (meaningful only where they act).
        acting: ``(B, Z)`` bool, the dimension's layer acts at this step.
        held: ``(B, Z)`` the actions held from the layers' previous acting steps.
    """

    def __init__(self, mean: Tensor, std: Tensor, acting: Tensor, held: Tensor) -> None:
        """Wrap the Gaussians' parameters with the acting mask and the held actions."""
        self.normal = Normal(mean, std)
        self.acting = acting
        self.held = held

    @property
    def mean(self) -> Tensor:
        """The Gaussians' means where acting, else the held actions."""
        mean: Tensor = self.normal.mean
        return torch.where(self.acting, mean, self.held)

    def sample(self) -> Tensor:
        """Draw new actions where acting; keep the held ones elsewhere."""
        drawn: Tensor = self.normal.sample()  # type: ignore[no-untyped-call]
        return torch.where(self.acting, drawn, self.held)

    def log_prob(self, actions: Tensor) -> Tensor:
        """Per-dimension log-probability of ``actions``, 0 where the layer holds."""
        log_prob: Tensor = self.normal.log_prob(actions)  # type: ignore[no-untyped-call]
        return torch.where(self.acting, log_prob, torch.zeros_like(log_prob))

    def entropy(self) -> Tensor:
        """Per-dimension entropy, 0 where the layer holds."""
        entropy: Tensor = self.normal.entropy()  # type: ignore[no-untyped-call]
        return torch.where(self.acting, entropy, torch.zeros_like(entropy))


class Layer(nn.Module):
    """One layer's forward dynamics and recurrent policy.

    Attributes:
        fd_cell: GRU over ``[x_i, previous action]``, the FD state.
        fd_head: Linear map from ``[FD state, action]`` to the prediction of the next ``x_i``.
        policy_cell: GRU over ``[x_i, goal]``, the policy state.
    """

    def __init__(self, obs_dim: int, action_dim: int, goal_dim: int, hidden_dim: int) -> None:
        """Create the cells and the prediction head.

        Args:
            obs_dim: Width of the layer's observation ``x_i``.
            action_dim: Width of the layer's action (one-hot world action or ``goal_dim``).
            goal_dim: Width of the goal from the layer above.
            hidden_dim: Width of both GRU states.
        """
        super().__init__()
        self.fd_cell = nn.GRUCell(obs_dim + action_dim, hidden_dim)
        self.fd_head = nn.Linear(hidden_dim + action_dim, obs_dim)
        self.policy_cell = nn.GRUCell(obs_dim + goal_dim, hidden_dim)


@attrs.frozen
class LayerStep:
    """What the forward part of one step computed, per layer (lists are bottom first).

    Attributes:
        state: ``(B, hidden_dim)`` state after the forward part (before ``fold_action``).
        features: ``(B, H)`` policy state of each layer after the step.
        observations: ``(B, d_i)`` each layer's observation ``x_i`` (detached).
        errors: ``(B,)`` each layer's ``mean((x_i - x̂_i)^2)`` against its pending
            prediction, for every row (differentiable in the prediction).
        acting: ``(B,)`` bool, the layer acts at this step.
        scored: ``(B,)`` bool, the layer acts and has a pending prediction.
        held: ``(B, goal_dim)`` each upper layer's latent action before this step.
        reward: ``(B,)`` layer 0's blended reward (detached).
    """

    state: Tensor
    features: list[Tensor]
    observations: list[Tensor]
    errors: list[Tensor]
    acting: list[Tensor]
    scored: list[Tensor]
    held: list[Tensor]
    reward: Tensor


class HierarchicalNetwork(PolicyNetwork):
    """The layers of ``hierarchical`` as one policy network (see the module docstring).

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


class HierarchicalCuriosity(OwnedPolicyCuriosity):
    """``hierarchical``: the layered network the host acts with and trains."""

    def __init__(
        self, options: Any, observation_spec: ObservationSpec, action_spec: ActionSpec, device: str
    ) -> None:
        """Build the frozen encoder and the network on ``device``.

        Args:
            options: :class:`~pamiqx_fd_curiosity.plugin.HierarchicalOptions`.
            observation_spec: What the world observes (images or vectors).
            action_spec: The world's action space (layer 0's action).
            device: Where the network lives.
        """
        encoder = RandomEncoder(observation_spec, options.latent_dim, options.encoder_channels)
        network = HierarchicalNetwork(
            encoder,
            options.latent_dim,
            action_spec,
            num_layers=options.num_layers,
            period=options.period,
            hidden_dim=options.hidden_dim,
            goal_dim=options.goal_dim,
            blend=options.blend,
            prediction_coef=options.prediction_coef,
        )
        super().__init__(network, device)
        self.hierarchical: HierarchicalNetwork = network

    @torch.no_grad()
    def top_layer_errors(self, batch: Transitions) -> Tensor:
        """The top layer's surprise (the maximising part, ``c_top = +1``) at each next observation.

        The top layer scores only at its acting steps, every ``period**(L-1)``
        steps. To score every transition, the batch is replayed from fresh states
        once per phase of that period (all phases batched together; world actions
        from the batch, latent actions at their means, states reset where
        ``dones``, each replay keeping its phase), and transition ``t`` gets the top
        layer's error ``e_top`` from the replay in which ``o_{t+1}`` arrives at a top
        acting step: the reward the top layer earns when a period ends on that
        observation.

        Args:
            batch: ``T`` transitions of ``E`` worlds.

        Returns:
            ``(T, E)`` float32 errors (0 where the top layer has no prediction yet).
        """
        network = self.hierarchical
        steps, envs = batch.shape
        cycle = network.periods[-1]
        device = batch.dones.device
        observations = torch.cat([batch.observations, batch.next_observations[-1:]])
        phases = torch.arange(cycle, device=device).repeat_interleave(envs).float()
        counter = network.layout.slice("step")
        valid = network.layout.slice(f"valid{network.num_layers - 1}")
        state = network.initial_state(cycle * envs, device)
        scores = []
        for s in range(steps + 1):
            if s > 0:
                actions = batch.actions[s - 1].repeat(cycle, *([1] * (batch.actions.dim() - 2)))
                state = network.advance(state, actions, None)
                keep = (~batch.dones[s - 1]).repeat(cycle)
                state = state * keep.to(state.dtype).unsqueeze(-1)
            # Each replay keeps its phase, across resets too.
            state[:, counter] = torch.remainder(phases + s, cycle).unsqueeze(-1)
            latent = network.encode(observations[s]).repeat(cycle, 1)
            step = network.step_layers(latent, state)
            scored = step.acting[-1].to(state.dtype) * state[:, valid].squeeze(-1)
            scores.append((step.errors[-1] * scored).reshape(cycle, envs).sum(dim=0))
            state = step.state
        return torch.stack(scores[1:])
