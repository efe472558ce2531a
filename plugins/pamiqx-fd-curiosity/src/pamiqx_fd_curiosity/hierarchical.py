"""``hierarchical``: layers of forward dynamics and policies acting at growing timescales.

``L`` layers (``num_layers``, 2 in the reference); layer ``i`` acts every
``period**i`` steps (1, 8). Each layer has its own latent forward-dynamics
model (FD: a recurrent core and a linear prediction head) and its own recurrent
policy. The cores (``core``) are GRU cells, or the reference's ``qgru`` (or
``qlstm``) stacks of :class:`pamiqx.api.RecurrentStack`, layer ``i`` being
``hidden_dim + layer_width_step * i`` wide (the reference: 8 blocks, 1,024 + 2 i,
src/configs/models/hierarchical.yaml). Acting steps the cores one step at a time.

* Layer 0 observes the latent ``x_0 = o_t``, the output of the run's
  representation stage (``random`` features, the reference's I-JEPA tokens
  ``jepa``; tokens flattened, so the whole latent is predicted);
  layer ``i+1`` observes ``x_{i+1}``, the layer-normed (no affine) FD output of
  layer ``i``, taken at the steps layer ``i+1`` acts.
* Each layer's policy takes ``[x_i, goal_i]``, where the goal is the latest
  latent action of the layer above (none at the top). Layer 0 emits the world's
  (multi-)discrete action; layer ``i >= 1`` emits a Gaussian latent action
  ``z_i`` (``goal_dim``; std ``softplus(W f) + 1e-6`` of its policy features as
  the reference's ``FCNormalHead``, capped, or a learned parameter: ``goal_std``).
  These are the network's *internal action* (``internal_action_dim = (L - 1) *
  goal_dim``, layer 1 first). A layer's latent action is held in the state
  between its acting steps and never resampled there; its log-probability and
  entropy count only at the steps it acts
  (:class:`~pamiqx_fd_curiosity.hierarchical_layers.HeldGoals`).
* The FD's condition (``fd_condition``). ``action``: the core advances on
  ``[x_i, a_i^prev]`` (the world's ``a_{t-1}``, or the held ``z_i``) and the head
  predicts from ``[FD output, a_i]`` once the step's action is known.
  ``policy`` (the reference's, agents/curiosity/hierarchical.py): the core
  advances on ``[x_i, policy output]`` of the same step (detached) and the head
  predicts from the FD output alone, before the action is sampled.
* Reward: at layer ``i``'s acting steps ``e_i = mean((x_i - x̂_i)^2)`` over
  latent dimensions, ``x̂_i`` predicted at its previous acting step; ``c``
  linear from -1 (bottom: minimise surprise) to +1 (top: seek it,
  ``lerp_min_max``); ``r_top = c_top e_top`` and
  ``r_i = (1 - blend) c_i e_i + blend r_{i+1}``. The host gets layer 0's blended
  ``r_0`` as :attr:`PolicyStep.intrinsic`.

Timing inside one step ``t`` (the host samples the actions after ``forward``
and hands them back through ``fold_action``):

* ``forward``: for each acting layer, bottom up, score ``x_i`` against the
  pending prediction, advance the policy core with ``[x_i, goal_i]`` and the FD
  core with ``[x_i, condition]`` (with ``fd_condition = "policy"`` also predict
  here). Layer ``i+1`` therefore observes layer ``i``'s FD output *after* it
  took in the observation that just arrived, as in the reference, where the
  upper layer steps after the lower.
* ``fold_action``: for each acting layer store its new action (a new ``z_i``
  replaces the held one) and, with ``fd_condition = "action"``, predict the
  layer's next observation from ``[FD output, a_i]``. Then count the step.

Reward timing: by default an upper layer's reward counts only at its acting
steps (between them ``r_{i+1} = 0`` in the blend). Its error measures how the
period that just ended turned out, so it lands on the transition closing that
period and the discount carries it back to the actions of the period; holding
it for the next ``period**i`` steps would credit steps that could not have
caused it and weigh the upper layer ``period**i`` times more than the bottom
one. ``hold_upper_reward`` gives the reference's behaviour: the upper layer's
blended reward of its last acting step enters every step until it acts again
(kept in the state, ``reward{i}``). The reference's lower layer steps first, so
there the new upper reward enters from the step after the upper layer's acting
step, one step later than here, where it enters at that step itself: the
reward of step ``t`` is that of the transition into ``o_t`` in both, and here it
is never a step stale. The first step after a (re)start has no pending
prediction: every layer's error counts 0 there (a per-layer validity flag in
the state) and nothing is held. A layer below sees a new goal from the step
after the upper layer chose it (the host samples both actions together), as in
the reference, where the lower layer steps first.

Training (``upper_policy_training``). Layer 0's policy is the host's policy
(group 0), trained on layer 0's blended reward ``r_0``; its value heads
(``ext``, ``int``) read layer 0's policy output. ``joint`` (default): the upper
layers' policies train through the joint log-probability of the world's and
the latent actions, on ``r_0`` too, which holds ``blend**i`` of layer ``i``'s
reward. ``own-ppo`` (the reference's one PPO per layer): each upper layer is a
policy group of the host's PPO (:attr:`pamiqx.api.PolicyNetwork.internal_groups`,
its ``goal_dim`` columns of the internal action), with its own blended reward
``r_i`` (:attr:`~pamiqx.api.PolicyStep.group_rewards`, read at its acting
steps, where it is the fresh ``r_i`` also with ``hold_upper_reward``), its own
value head on its own policy features and its acting mask; the host credits
the reward scored at a layer's acting step to its previous acting step (the
reference collects a layer's step with the reward computed at its next step),
runs GAE over the layer's own steps and adds its clipped policy, entropy and
value terms to the same loss (the host's ``pamiqx/learner/groups.py``). The
FDs are trained by the aux loss ``prediction_coef * sum_i loss_i`` inside
PPO's windows (targets and the upper
layers' observations detached, so each FD learns only from its own error):
``loss_i`` combines the layer's 1- to K-step prediction errors
(``max_imagination_steps``; steps 2..K from its own predictions, at its acting
steps: :mod:`pamiqx_fd_curiosity.hierarchical_imagination`) with weights
``exp(-(k-1)/K)``. ``forward_sequence`` steps through a window as acting does
(the layers act at different steps per row, so the stacks' parallel scan does
not apply).

Deliberate differences from the reference (beyond ``joint``, the default): the FDs
train with PPO's optimizer inside its windows (the reference: one SGD trainer
and buffer per layer); no dropout in the cores (one forward pass acts and
trains); by default the token latent enters the cores flat (``token_mixing =
"lerp"``: the reference's learned mix of its tokens, ``LerpStackedFeatures``)
and the prediction head is linear (``fd_predictor = "swiglu"``: the reference's
SwiGLU feed-forward before it); the state-dependent goal std is capped at
``exp(0.5)``.

Flat state ``(B, hidden_dim)`` (see ``HierarchicalNetwork.layout`` in
:mod:`pamiqx_fd_curiosity.hierarchical_network`): ``step`` (steps since the
(re)start, modulo ``period**(L-1)``), ``action`` (one-hot ``a_{t-1}``), and per
layer ``fd{i}`` (FD core state), ``fdout{i}`` (the FD output, for a stack with
``fd_condition = "action"``: the head reads it in ``fold_action``; a GRU's
output is its state), ``pred{i}`` (pending prediction), ``valid{i}`` (a
prediction is pending), ``pi{i}`` (policy core state) and, for ``i >= 1``,
``goal{i}`` (the held ``z_i``) and ``reward{i}`` (the held blended reward, with
``hold_upper_reward``). A reset zeroes a row, so every layer acts at the first
step of an episode. The network runs in its parameters' dtype (float32) even
under the host's bf16 autocast.

The reward mixes signs (the bottom layers minimise surprise), so the defining
property "a novel observation earns more than a familiar one" is checked on the
maximising part, the top layer's own error: see
:meth:`HierarchicalCuriosity.top_layer_errors`.

This module holds the mechanism; the network is in
:mod:`pamiqx_fd_curiosity.hierarchical_network` (its heads in
:mod:`pamiqx_fd_curiosity.hierarchical_heads`) and the per-layer pieces in
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
        shape = observation_spec.shape
        lerp = options.token_mixing == "lerp" and len(shape) == 2
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
            core=options.core,
            core_depth=options.core_depth,
            core_ff_ratio=options.core_ff_ratio,
            layer_width_step=options.layer_width_step,
            goal_std=options.goal_std,
            hold_upper_reward=options.hold_upper_reward,
            fd_condition=options.fd_condition,
            max_imagination_steps=options.max_imagination_steps,
            fd_predictor=options.fd_predictor,
            tokens=(shape[0], shape[1]) if lerp else None,
            upper_policy_training=options.upper_policy_training,
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
        means: Tensor | None = None
        scores = []
        for s in range(steps + 1):
            if s > 0:
                actions = batch.actions[s - 1].repeat(cycle, *([1] * (batch.actions.dim() - 2)))
                state = network.advance(state, actions, means)
                keep = (~batch.dones[s - 1]).repeat(cycle)
                state = state * keep.to(state.dtype).unsqueeze(-1)
            # Each replay keeps its phase, across resets too.
            state[:, counter] = torch.remainder(phases + s, cycle).unsqueeze(-1)
            latent = network.encode(observations[s]).repeat(cycle, 1)
            step = network.step_layers(latent, state)
            scored = step.acting[-1].to(state.dtype) * state[:, valid].squeeze(-1)
            scores.append((step.errors[-1] * scored).reshape(cycle, envs).sum(dim=0))
            means = network.heads(step.features, step.acting, step.held)[2].mean
            state = step.state
        return torch.stack(scores[1:])
