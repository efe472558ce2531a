"""``hierarchical``: layers of forward dynamics and policies acting at growing timescales.

``L`` layers (``num_layers``, 2 in the reference); layer ``i`` acts every
``period**i`` steps (1, 8). Each layer has its own latent forward-dynamics
model (a GRU cell and a linear head) and its own recurrent policy (a GRU cell
and heads):

* Layer 0 observes the latent ``x_0 = o_t``, the output of the run's
  representation stage (``random`` features, the reference's I-JEPA tokens
  ``jepa``; tokens flattened, so the whole latent is predicted);
  layer ``i+1`` observes ``x_{i+1}``, the layer-normed (no affine) FD state of
  layer ``i``, sampled at the steps layer ``i+1`` acts.
* Each layer's policy takes ``[x_i, goal_i]``, where the goal is the latest
  latent action of the layer above (zeros at the top). Layer 0 emits the
  world's (multi-)discrete action; layer ``i >= 1`` emits a Gaussian latent
  action ``z_i`` (``goal_dim``). These are the network's *internal action*
  (``internal_action_dim = (L - 1) * goal_dim``, layer 1 first). A layer's
  latent action is held in the state between its acting steps and never
  resampled there; its log-probability and entropy count only at the steps
  it acts (:class:`~pamiqx_fd_curiosity.hierarchical_layers.HeldGoals`).
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

Flat state ``(B, hidden_dim)`` (see ``HierarchicalNetwork.layout`` in
:mod:`pamiqx_fd_curiosity.hierarchical_network`): ``step`` (steps since the
(re)start, modulo ``period**(L-1)``), ``action`` (one-hot ``a_{t-1}``), and per
layer ``fd{i}`` (FD GRU state), ``pred{i}`` (pending prediction), ``valid{i}``
(a prediction is pending), ``pi{i}`` (policy GRU state) and, for ``i >= 1``,
``goal{i}`` (the held ``z_i``). A reset zeroes a row, so every layer acts at the
first step of an episode. The network runs in float32 even under the host's
bf16 autocast.

The reward mixes signs (the bottom layers minimise surprise), so the defining
property "a novel observation earns more than a familiar one" is checked on the
maximising part, the top layer's own error: see
:meth:`HierarchicalCuriosity.top_layer_errors`.

This module holds the mechanism; the network is in
:mod:`pamiqx_fd_curiosity.hierarchical_network` and the per-layer pieces in
:mod:`pamiqx_fd_curiosity.hierarchical_layers`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pamiqx.api import ActionSpec, ObservationSpec, Transitions
from pamiqx_fd_curiosity.hierarchical_network import HierarchicalNetwork
from pamiqx_fd_curiosity.networks import FlatLatent, latent_width
from pamiqx_fd_curiosity.owned import OwnedPolicyCuriosity


class HierarchicalCuriosity(OwnedPolicyCuriosity):
    """``hierarchical``: the layered network the host acts with and trains."""

    def __init__(
        self, options: Any, observation_spec: ObservationSpec, action_spec: ActionSpec, device: str
    ) -> None:
        """Build the network on ``device`` for the stage's latents.

        Args:
            options: :class:`~pamiqx_fd_curiosity.plugin.HierarchicalOptions`.
            observation_spec: The latents the representation stage hands over
                (vectors, or tokens flattened).
            action_spec: The world's action space (layer 0's action).
            device: Where the network lives.
        """
        network = HierarchicalNetwork(
            FlatLatent(),
            latent_width(observation_spec),
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
