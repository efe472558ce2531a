"""Options of the mechanisms that own the policy network.

``unified``, ``ttt``, ``ttt-e2e`` and ``hierarchical`` (import-light: attrs only).
"""

from __future__ import annotations

from typing import Literal

import attrs

from pamiqx_fd_curiosity.fd_options import (
    positive,
    positive_float,
    unit_closed,
    unit_open,
)


@attrs.frozen
class UnifiedOptions:
    """Options of ``unified``: one recurrent network predicts, acts and evaluates.

    The latent ``o_t`` (predicted whole) is the representation stage's output.

    Attributes:
        hidden_dim: Width of the recurrent core and the heads' input: the GRU's state,
            or the width of a ``qgru``/``qlstm`` stack.
        core: The recurrent core: ``gru`` (a GRU cell, the small default), or the
            reference's ``qgru`` (its unified core: 8 blocks of 1,024, feed-forward
            x4, src/configs/models/unified.yaml: ``hidden_dim = 1024``,
            ``core_depth = 8``) or ``qlstm`` stack. A stack replays PPO's windows
            with its parallel scan.
        core_depth: Blocks of a ``qgru``/``qlstm`` core.
        core_ff_ratio: Feed-forward width of a ``qgru``/``qlstm`` block, over its width.
        internal_dim: Width of the continuous internal action ``z`` fed back to the network.
        prediction_coef: Weight of the prediction loss added to PPO's loss.
        reward_average: How the error of the last prediction becomes the reward:
            ``mean`` over the whole latent, or ``token-exponential``, the reference's
            (src/exp/agents/curiosity/unified.py with ``average_exponentially`` of
            src/exp/utils.py): each token's mean squared error, averaged over the
            ``N`` tokens with weights ``w^i``, ``w = exp(-1/N)`` (first token heaviest).
            The two agree for vector latents. Default ``mean``, pamiqx's scoring so
            far; experiments/reference/unified.toml sets ``token-exponential``.
        internal_entropy: What the entropy of ``z`` does in training. ``bonus``: the
            host's PPO entropy bonus (``policy.entropy_coef``) widens ``z`` as it widens
            the world's action (bounded by the clamp of ``z``'s log-std).
            ``penalty``: the entropy reaches the host's bonus as a constant and the
            network adds ``internal_entropy_coef * mean(H(z))`` to its aux loss, the
            form of the reference's ttt trainer (``internal_action_entropy_coef``,
            src/exp/trainers/ttt.py; its configs set the coefficient to 0); ``none``:
            neither. Default ``bonus``, so that existing experiments keep training as
            they did. The reference's own unified model has no ``z`` at all
            (src/configs/models/unified.yaml, trainers/fd_ppo_policy.py):
            experiments/reference/unified.toml sets ``internal_dim = 0``, and its ttt
            files ``internal_entropy = "none"``.
        internal_entropy_coef: Weight of the ``penalty`` (unused otherwise).
    """

    hidden_dim: int = attrs.field(default=256, validator=positive)
    core: Literal["gru", "qgru", "qlstm"] = attrs.field(
        default="gru", validator=attrs.validators.in_(("gru", "qgru", "qlstm"))
    )
    core_depth: int = attrs.field(default=2, validator=positive)
    core_ff_ratio: float = attrs.field(default=4.0, validator=positive_float)
    internal_dim: int = attrs.field(default=8, validator=attrs.validators.ge(0))
    prediction_coef: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))
    reward_average: Literal["mean", "token-exponential"] = attrs.field(
        default="mean", validator=attrs.validators.in_(("mean", "token-exponential"))
    )
    internal_entropy: Literal["bonus", "penalty", "none"] = attrs.field(
        default="bonus", validator=attrs.validators.in_(("bonus", "penalty", "none"))
    )
    internal_entropy_coef: float = attrs.field(default=0.01, validator=attrs.validators.ge(0.0))


@attrs.frozen
class TTTOptions(UnifiedOptions):
    """Options of ``ttt``: the unified network with a test-time-training core.

    ``reward_average`` is unused (the reward is the fatigued surprisal); the
    ``qgru``/``qlstm`` sizes ``core_depth`` do not apply either, ``core_ff_ratio``
    sizes the TTT blocks' feed-forward.

    Reference presets of the ``ttt`` core (``hidden_dim`` is the stack's width):
    src/configs/models/ttt.yaml: 8 blocks of 1,024, 16 heads, feed-forward x2,
    base inner learning rate 0.001 (both ends), chunk 128 (``hidden_dim = 1024``,
    ``ttt_depth = 8``, ``ttt_heads = 16``, ``core_ff_ratio = 2``,
    ``ttt_base_lr_min = ttt_base_lr_max = 0.001``, ``ttt_chunk = 128``);
    src/configs/models/ttt_e2e.yaml: 16 blocks of 1,024, 32 heads, feed-forward x4,
    base inner learning rates 1e-4 to 0.1, chunk 64 (``REFERENCE_SIZES["ttt"]``).

    Attributes:
        core: ``fast-weights``: the small stand-in, one ``d x d`` fast-weight matrix
            taking one gradient step per input (surprisal: its ``d`` per-dimension
            inner losses). ``ttt``: the reference's TTT layer
            (:class:`pamiqx.api.RecurrentStack` ``"ttt"``: multi-head MLP fast weights
            with a learned, input-gated inner learning rate and decay, updated
            chunkwise); the surprisal vector is each block's and head's inner loss,
            ``ttt_depth * ttt_heads`` dimensions.
        ttt_dim: Size ``d`` of the ``fast-weights`` layer (its state is a ``d x d`` matrix and
            the surprisal vector has ``d`` dimensions).
        inner_lr: Step size of the ``fast-weights`` per-step gradient step (keys are unit
            vectors, so values in (0, 1] keep the inner loop stable).
        ttt_depth: Blocks of the ``ttt`` core.
        ttt_heads: Heads per ``ttt`` block (``hidden_dim`` must be divisible by it).
        ttt_inner_ratio: Hidden width of a head's fast MLP over the head width.
        ttt_chunk: Steps per chunkwise fast-weight update.
        ttt_base_lr_min: Lowest of the heads' initial base inner learning rates
            (log-spaced over the heads up to ``ttt_base_lr_max``).
        ttt_base_lr_max: Highest of them.
        prediction_delay: ``d``: the network's prediction made at step ``t`` is trained on
            the latent ``d`` steps later (pairs inside one window and one episode). The
            reference delays its ttt training target by ``target_delay_frames = 32``
            (src/configs/buffers/ttt.yaml): the target chunk starts 32 steps after the
            observation chunk (src/exp/trainers/ttt.py ``create_buffer``). Its reward
            is the surprisal, so the delay shapes only what the core learns to carry.
            Default 1 (the next latent): with the ``rollouts`` regime's default
            32-step windows a delay of 32 would leave no pair to train on;
            experiments/reference/ttt.toml sets 32 (its windows are 128 steps).
        fatigue_decay: Decay of the fatigue ``f_t`` (0.99 in the reference).
        long_decay: Decay of the long average ``M_t`` of the mean surprisal (0.9999).
    """

    core: Literal["fast-weights", "ttt"] = attrs.field(  # type: ignore[assignment]
        default="fast-weights", validator=attrs.validators.in_(("fast-weights", "ttt"))
    )
    ttt_dim: int = attrs.field(default=32, validator=positive)
    inner_lr: float = attrs.field(default=0.5, validator=[positive_float, attrs.validators.le(1.0)])
    ttt_depth: int = attrs.field(default=2, validator=positive)
    ttt_heads: int = attrs.field(default=4, validator=positive)
    ttt_inner_ratio: float = attrs.field(default=4.0, validator=positive_float)
    ttt_chunk: int = attrs.field(default=16, validator=positive)
    ttt_base_lr_min: float = attrs.field(default=1e-4, validator=unit_open)
    ttt_base_lr_max: float = attrs.field(
        default=0.1, validator=[positive_float, attrs.validators.le(1.0)]
    )
    prediction_delay: int = attrs.field(default=1, validator=positive)
    fatigue_decay: float = attrs.field(default=0.99, validator=unit_open)
    long_decay: float = attrs.field(default=0.9999, validator=unit_open)

    def __attrs_post_init__(self) -> None:
        """Check the ``ttt`` core's sizes against each other, so ``pamiqx validate`` sees it.

        Raises:
            ValueError: If the heads do not split ``hidden_dim``, or the base inner
                learning rates are the wrong way round.
        """
        if self.core == "ttt" and self.hidden_dim % self.ttt_heads:
            raise ValueError(
                f"curiosity.hidden_dim ({self.hidden_dim}) must be divisible by "
                f"curiosity.ttt_heads ({self.ttt_heads}) with core = 'ttt'"
            )
        if self.ttt_base_lr_min > self.ttt_base_lr_max:
            raise ValueError(
                f"curiosity.ttt_base_lr_min ({self.ttt_base_lr_min}) is above "
                f"curiosity.ttt_base_lr_max ({self.ttt_base_lr_max})"
            )


@attrs.frozen
class TTTE2EOptions(TTTOptions):
    """Options of ``ttt-e2e``: ``ttt`` with its image encoder trained end to end.

    The reference's (src/configs/models/ttt_e2e.yaml, vit_encoder.py
    ``TransformerEncoder``): raw 12x12 patches (432 values) projected to 1,024, no
    encoder layers, 4 decoder layers of 8 heads (feed-forward 4,096) whose 8 learned
    query tokens attend to the patches, the first query's output RMS-normed, then
    16 TTT blocks of 1,024 with 32 heads (``encoder = "patch-transformer"``,
    ``patch_size = 12``, ``encoder_width = 1024``, ``encoder_layers = 4``,
    ``encoder_heads = 8``, ``encoder_ff_dim = 4096``, ``encoder_queries = 8``,
    ``core = "ttt"``, ``hidden_dim = 1024``, ``ttt_depth = 16``, ``ttt_heads = 32``,
    ``ttt_chunk = 64``).

    Attributes:
        encoder: ``conv``: a conv encoder (the small default); ``patch-transformer``:
            the reference's patch transformer decoder.
        latent_dim: Size of the latent ``o_t`` the trained encoder outputs (a projection
            of its features, layer-normed without a learned scale, so the prediction
            loss cannot shrink it).
        encoder_feature_dim: Output width of the ``conv`` encoder (before the projection
            to ``latent_dim``).
        patch_size: Side of the square patches of ``patch-transformer`` (the frame's
            sides must be multiples of it).
        encoder_width: Width of the ``patch-transformer`` tokens.
        encoder_layers: Decoder layers of ``patch-transformer``.
        encoder_heads: Attention heads (``encoder_width`` must be divisible by it).
        encoder_ff_dim: Hidden width of each layer's SwiGLU feed-forward.
        encoder_queries: Learned query tokens of the decoder (the first one's output
            is the frame's features).
        prediction_delay: ``d`` as in ``ttt``. The reference's ttt_e2e buffer
            (src/configs/buffers/ttt_e2e.yaml) sets no ``target_delay_frames``, so its
            default 1 applies (its trainers/ttt_e2e.yaml passes 16 to the trainer,
            which stores it but reads only the buffer's delay).
    """

    encoder: Literal["conv", "patch-transformer"] = attrs.field(
        default="conv", validator=attrs.validators.in_(("conv", "patch-transformer"))
    )
    latent_dim: int = attrs.field(default=64, validator=positive)
    encoder_feature_dim: int = attrs.field(default=256, validator=positive)
    patch_size: int = attrs.field(default=12, validator=positive)
    encoder_width: int = attrs.field(default=64, validator=positive)
    encoder_layers: int = attrs.field(default=4, validator=positive)
    encoder_heads: int = attrs.field(default=4, validator=positive)
    encoder_ff_dim: int = attrs.field(default=256, validator=positive)
    encoder_queries: int = attrs.field(default=8, validator=positive)


@attrs.frozen
class HierarchicalOptions:
    """Options of ``hierarchical``: layers of forward dynamics and policies at growing timescales.

    Layer 0 observes the representation stage's output (``[representation]``).
    Reference values (MLShukai/pamiq-curiosity-exp, src/configs/experiment/hierarchical.yaml,
    models/hierarchical.yaml, trainers/hierarchical.yaml, interaction/agent/hierarchical.yaml)
    are in experiments/reference/hierarchical.toml.

    Attributes:
        num_layers: ``L`` (2 in the reference); layer ``i`` acts every ``period**i`` steps.
        period: Timescale ratio between layers (8 in the reference).
        core: Each layer's forward-dynamics and policy core: ``gru`` (a GRU cell, the
            small default, so that existing experiments keep their meaning), or a
            ``qgru`` (the reference's: 8 blocks, feed-forward x4) or ``qlstm`` stack of
            :class:`pamiqx.api.RecurrentStack`. Its dropout (0.1 in the reference) is
            left out: the same forward pass acts and trains.
        core_depth: Blocks of a ``qgru``/``qlstm`` core.
        core_ff_ratio: Feed-forward width of a ``qgru``/``qlstm`` block, over its width.
        hidden_dim: Width of layer 0's cores: the GRUs' state, or the stacks' width.
        layer_width_step: Layer ``i``'s cores are ``hidden_dim + layer_width_step * i``
            wide (the reference: 2, widths 1024 and 1026; default 0, one width).
        goal_dim: Width of the continuous latent action an upper layer emits (the
            reference: the emitting layer's width, 1026).
        goal_std: The upper layers' Gaussian std: ``state``, the reference's
            (``FCNormalHead``, src/exp/models/components/normal.py):
            ``softplus(W f) + 1e-6`` of the layer's policy features, capped at
            ``exp(0.5)`` (the cap is pamiqx's: nothing but it stops PPO's entropy bonus
            from widening a Gaussian only the network itself reads); ``parameter``: a
            learned, state-independent log-std clamped to ``[-5, 0.5]``. Default
            ``parameter``, pamiqx's so far: with the reference's ``state`` the existing
            experiment files would no longer repeat their recorded results
            (tests/test_identical_metrics.py); experiments/reference/hierarchical.toml
            sets ``state``.
        blend: Share of the layer above in a layer's reward:
            ``r_i = (1 - blend) * c_i * e_i + blend * r_{i+1}`` (0.5 in the reference).
        hold_upper_reward: The upper layer's blended reward ``r_{i+1}`` enters the blend
            at every step of its period, held from its last acting step, as in the
            reference (its agent keeps the upper layer's last reward between the upper
            layer's steps). Default False, pamiqx's choice: the reward of an upper
            layer's acting step measures how the period that just ended turned out, so
            it counts once, at that step, and the discount carries it back; holding it
            credits the steps of the next period, which could not have caused it, and
            weighs the upper layer ``period**i`` times more than the bottom one.
        fd_condition: What a layer's forward dynamics is conditioned on besides its
            observation. ``action`` (default, pamiqx's so far): the layer's previous
            action enters the core and the action of the step the prediction head,
            so the prediction knows the action that was taken. ``policy``: the
            reference's (agents/curiosity/hierarchical.py, models/latent_fd.py): the
            core takes the layer's policy latent of the same step (detached: the
            forward-dynamics loss does not shape the policy) and the prediction is
            made from the core's output alone, before the action is sampled. The
            default stays ``action`` so that the existing experiments and tests keep
            their meaning; experiments/reference/hierarchical.toml sets ``policy``.
        max_imagination_steps: ``K``: the forward dynamics trains on its 1- to K-step
            predictions inside each PPO window (steps 2..K from its own predictions,
            at the layer's acting steps), the per-step mean errors combined with
            weights ``exp(-(k-1)/K)`` (trainers/hierarchical.yaml,
            ``imagination_length``: 3). Rewards use the 1-step error. Default 1 (no
            imagination, pamiqx's so far) for the same reason as ``goal_std``;
            experiments/reference/hierarchical.toml sets 3.
        fd_predictor: The FD's prediction head: ``linear`` (default, pamiqx's so far),
            or ``swiglu``, the reference's ``Predictor`` (models/latent_fd.py): a linear
            map to the core's width, a SwiGLU feed-forward (``core_ff_ratio`` wide, no
            residual) and a linear map to the observation.
        token_mixing: How layer 0's cores read a token latent ``(N, D)``: ``flat``
            (default, pamiqx's so far: the ``N * D`` values), or ``lerp``, the
            reference's (``LerpStackedFeatures``, models/components/stacked_features.py):
            each token through its own linear map to the core's width, mixed with
            softmax weights computed from all tokens (the FD and the policy each have
            their own). Vector latents are read flat either way.
        prediction_coef: Weight of the layers' prediction losses added to PPO's loss.
        upper_policy_training: How the upper layers' policies train. ``joint``
            (default, pamiqx's so far, so that the existing experiments repeat their
            recorded results): through the joint log-probability of the world's and
            the latent actions, on layer 0's blended reward ``r_0``. ``own-ppo``, the
            reference's (``PPOHiddenStatePiVTrainer.create_multiple(hierarchical=True)``,
            one trainer per layer): each upper layer is a policy group of the host's
            PPO (:attr:`pamiqx.api.PolicyNetwork.internal_groups`) with its own blended
            reward ``r_i``, its own value head on its policy features, and GAE over
            its own acting steps; experiments/reference/hierarchical.toml sets it.
    """

    num_layers: int = attrs.field(default=2, validator=attrs.validators.ge(2))
    period: int = attrs.field(default=8, validator=attrs.validators.ge(2))
    core: Literal["gru", "qgru", "qlstm"] = attrs.field(
        default="gru", validator=attrs.validators.in_(("gru", "qgru", "qlstm"))
    )
    core_depth: int = attrs.field(default=2, validator=positive)
    core_ff_ratio: float = attrs.field(default=4.0, validator=positive_float)
    hidden_dim: int = attrs.field(default=128, validator=positive)
    layer_width_step: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    goal_dim: int = attrs.field(default=8, validator=positive)
    goal_std: Literal["state", "parameter"] = attrs.field(
        default="parameter", validator=attrs.validators.in_(("state", "parameter"))
    )
    blend: float = attrs.field(default=0.5, validator=unit_closed)
    hold_upper_reward: bool = False
    fd_condition: Literal["action", "policy"] = attrs.field(
        default="action", validator=attrs.validators.in_(("action", "policy"))
    )
    max_imagination_steps: int = attrs.field(default=1, validator=positive)
    fd_predictor: Literal["linear", "swiglu"] = attrs.field(
        default="linear", validator=attrs.validators.in_(("linear", "swiglu"))
    )
    token_mixing: Literal["flat", "lerp"] = attrs.field(
        default="flat", validator=attrs.validators.in_(("flat", "lerp"))
    )
    prediction_coef: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))
    upper_policy_training: Literal["joint", "own-ppo"] = attrs.field(
        default="joint", validator=attrs.validators.in_(("joint", "own-ppo"))
    )
