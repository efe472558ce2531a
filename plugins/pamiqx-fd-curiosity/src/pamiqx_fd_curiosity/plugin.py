"""Registers the family's seven mechanisms; import-light (torch is imported in ``build``).

``adversarial``, ``delta-minimize`` and ``meta`` score rewards beside the host's
policy; ``hierarchical``, ``unified``, ``ttt`` and ``ttt-e2e`` own the policy
network (see :mod:`pamiqx_fd_curiosity.owned`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs

from pamiqx.api import (
    ActionSpec,
    BuildContext,
    CuriosityPlugin,
    ObservationSpec,
    PluginError,
    hookimpl,
)

if TYPE_CHECKING:
    from pamiqx.api import Curiosity

_positive = attrs.validators.gt(0)
_positive_float = attrs.validators.gt(0.0)
_unit_open = [attrs.validators.gt(0.0), attrs.validators.lt(1.0)]
_unit_closed = [attrs.validators.ge(0.0), attrs.validators.le(1.0)]


def require_latents(mechanism: str, observation_spec: ObservationSpec) -> None:
    """Refuse raw images: a mechanism predicting latents needs a representation stage.

    Args:
        mechanism: The plugin's name.
        observation_spec: What the representation stage hands the mechanism.

    Raises:
        PluginError: If it hands on images (the ``pixels`` representation).
    """
    if observation_spec.kind == "image":
        raise PluginError(
            f"{mechanism} predicts latents, not pixels: set [representation] plugin = "
            '"random" (frozen random features) or "jepa", and [models.encoder] plugin = '
            '"mlp-encoder" / "token-encoder".'
        )


@attrs.frozen
class FDOptions:
    """Options every forward-dynamics mechanism takes.

    The latent ``o_t`` is the representation stage's output (``[representation]``),
    so its size is that stage's option, not the mechanism's.

    Attributes:
        hidden_dim: Width of the forward-dynamics model's core: the GRU's state, or
            the width of a ``qlstm``/``qgru`` stack.
        core: The forward model's recurrent core: ``gru`` (a GRU cell), or the
            reference's ``qlstm`` or ``qgru`` stack (pre-RMSNorm blocks with the
            input-gated recurrence and a SwiGLU feed-forward; the reference's
            forward models are 8 blocks of 1,024: ``hidden_dim = 1024``,
            ``core_depth = 8``).
        core_depth: Blocks of a ``qlstm``/``qgru`` core.
        core_ff_ratio: Feed-forward width of a ``qlstm``/``qgru`` block, over its width.
        lr: Learning rate of the forward-dynamics model(s).
        grad_clip: Maximum gradient norm per step (0: no clipping; the reference clips
            none).
        epochs: Gradient steps per ``update()`` on the whole batch (``rollouts``).
        optimizer: ``adam``, ``adamw`` or ``sgd-nesterov`` (momentum 0.9, the
            reference's forward-dynamics optimizer).
        weight_decay: The optimizer's weight decay (the reference: 1e-4).
        regime: When and on what the models train. ``rollouts``: once per batch the
            host hands over, on that batch. ``replay-windows`` (the reference): the
            steps the agent side scored are kept, with the recurrent state before
            each, in a FIFO of the last ``replay_size`` steps per world; after every
            ``train_every`` new steps, ``windows`` random windows of ``window_length``
            steps (plus the imagination steps) are trained on, each from its stored
            state, ``windows_per_step`` per gradient step, one pass.
        replay_size: Steps per world the replay FIFO keeps (reference 1000).
        train_every: New steps per world between training calls (reference 128).
        windows: Windows per training call (reference 32).
        window_length: Steps per window whose predictions are trained (reference 256);
            a window holds ``K - 1`` more steps for the deeper imagination predictions.
        windows_per_step: Windows per gradient step (reference 1).
    """

    hidden_dim: int = attrs.field(default=256, validator=_positive)
    core: Literal["gru", "qlstm", "qgru"] = attrs.field(
        default="gru", validator=attrs.validators.in_(("gru", "qlstm", "qgru"))
    )
    core_depth: int = attrs.field(default=2, validator=_positive)
    core_ff_ratio: float = attrs.field(default=4.0, validator=_positive_float)
    lr: float = attrs.field(default=1e-3, validator=_positive_float)
    grad_clip: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))
    epochs: int = attrs.field(default=1, validator=_positive)
    optimizer: Literal["adam", "adamw", "sgd-nesterov"] = attrs.field(
        default="adam", validator=attrs.validators.in_(("adam", "adamw", "sgd-nesterov"))
    )
    weight_decay: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    regime: Literal["rollouts", "replay-windows"] = attrs.field(
        default="rollouts", validator=attrs.validators.in_(("rollouts", "replay-windows"))
    )
    replay_size: int = attrs.field(default=1000, validator=_positive)
    train_every: int = attrs.field(default=128, validator=_positive)
    windows: int = attrs.field(default=32, validator=_positive)
    window_length: int = attrs.field(default=256, validator=_positive)
    windows_per_step: int = attrs.field(default=1, validator=_positive)

    @property
    def extra_window_steps(self) -> int:
        """Steps a replayed window holds beyond ``window_length`` (imagination: ``K - 1``)."""
        return 0

    def __attrs_post_init__(self) -> None:
        """Check that a replayed window fits in the FIFO.

        Raises:
            ValueError: If ``window_length`` (plus the imagination steps) exceeds
                ``replay_size``, or ``train_every`` does (steps would be dropped unseen).
        """
        if self.regime != "replay-windows":
            return
        span = self.window_length + self.extra_window_steps
        if span > self.replay_size:
            raise ValueError(
                f"curiosity.window_length ({self.window_length}) plus "
                f"{self.extra_window_steps} imagination steps is more than "
                f"curiosity.replay_size ({self.replay_size}): no window fits in the FIFO"
            )
        if self.train_every > self.replay_size:
            raise ValueError(
                f"curiosity.train_every ({self.train_every}) is more than "
                f"curiosity.replay_size ({self.replay_size}): steps would be dropped untrained"
            )


@attrs.frozen
class ImaginationOptions(FDOptions):
    """Options of a mechanism scoring K-step imagined predictions.

    Attributes:
        max_imagination_steps: ``K``: each observation is scored against the
            predictions made 1..K steps before it, averaged with weights
            ``w^(k-1)``, ``w = exp(-1/K)``.
    """

    max_imagination_steps: int = attrs.field(default=3, validator=_positive)

    @property
    def extra_window_steps(self) -> int:
        """A window's last ``K``-step prediction reaches ``K - 1`` steps past its length."""
        return self.max_imagination_steps - 1


@attrs.frozen
class AdversarialOptions(ImaginationOptions):
    """Options of ``adversarial`` (reference default K=3).

    Attributes:
        max_imagination_steps: ``K`` (3 in the reference).
    """

    max_imagination_steps: int = attrs.field(default=3, validator=_positive)


@attrs.frozen
class DeltaMinimizeOptions(ImaginationOptions):
    """Options of ``delta-minimize`` (reference default K=5).

    Attributes:
        max_imagination_steps: ``K`` (5 in the reference).
    """

    max_imagination_steps: int = attrs.field(default=5, validator=_positive)


@attrs.frozen
class MetaOptions(FDOptions):
    """Options of ``meta`` (no imagination: each level's 1-step prediction is scored).

    Attributes:
        num_meta_levels: ``L``, the forward-dynamics levels (2 in the reference).
        coefficients: Reward coefficients ``c_i``, bottom level first:
            ``maximize_top`` ``[-1, ..., -1, +1]``, ``all_minimize`` (all -1),
            ``all_maximize`` (all +1) or ``linear`` (-1 to +1).
    """

    num_meta_levels: int = attrs.field(default=2, validator=_positive)
    coefficients: Literal["maximize_top", "all_minimize", "all_maximize", "linear"] = "maximize_top"


@attrs.frozen
class UnifiedOptions:
    """Options of ``unified``: one recurrent network predicts, acts and evaluates.

    The latent ``o_t`` (predicted whole) is the representation stage's output.

    Attributes:
        hidden_dim: Width of the recurrent core and the heads' input.
        internal_dim: Width of the continuous internal action ``z`` fed back to the network.
        prediction_coef: Weight of the prediction loss added to PPO's loss.
    """

    hidden_dim: int = attrs.field(default=256, validator=_positive)
    internal_dim: int = attrs.field(default=8, validator=attrs.validators.ge(0))
    prediction_coef: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))


@attrs.frozen
class TTTOptions(UnifiedOptions):
    """Options of ``ttt``: the unified network with a test-time-training core.

    Attributes:
        ttt_dim: Size ``d`` of the fast-weight layer (its state is a ``d x d`` matrix and
            the surprisal vector has ``d`` dimensions).
        inner_lr: Step size of the fast weights' per-step gradient step (keys are unit
            vectors, so values in (0, 1] keep the inner loop stable).
        fatigue_decay: Decay of the fatigue ``f_t`` (0.99 in the reference).
        long_decay: Decay of the long average ``M_t`` of the mean surprisal (0.9999).
    """

    ttt_dim: int = attrs.field(default=32, validator=_positive)
    inner_lr: float = attrs.field(
        default=0.5, validator=[_positive_float, attrs.validators.le(1.0)]
    )
    fatigue_decay: float = attrs.field(default=0.99, validator=_unit_open)
    long_decay: float = attrs.field(default=0.9999, validator=_unit_open)


@attrs.frozen
class TTTE2EOptions(TTTOptions):
    """Options of ``ttt-e2e``: ``ttt`` with its image encoder trained end to end.

    Attributes:
        latent_dim: Size of the latent ``o_t`` the trained encoder outputs.
        encoder_feature_dim: Output width of the trained conv encoder (before the
            projection to ``latent_dim``).
    """

    latent_dim: int = attrs.field(default=64, validator=_positive)
    encoder_feature_dim: int = attrs.field(default=256, validator=_positive)


@attrs.frozen
class HierarchicalOptions:
    """Options of ``hierarchical``: layers of forward dynamics and policies at growing timescales.

    Layer 0 observes the representation stage's output (``[representation]``).

    Attributes:
        num_layers: ``L`` (2 in the reference); layer ``i`` acts every ``period**i`` steps.
        period: Timescale ratio between layers (8 in the reference).
        hidden_dim: Width of each layer's forward-dynamics and policy GRUs.
        goal_dim: Width of the continuous latent action an upper layer emits.
        blend: Share of the layer above in a layer's reward:
            ``r_i = (1 - blend) * c_i * e_i + blend * r_{i+1}`` (0.5 in the reference).
        prediction_coef: Weight of the layers' prediction losses added to PPO's loss.
    """

    num_layers: int = attrs.field(default=2, validator=attrs.validators.ge(2))
    period: int = attrs.field(default=8, validator=attrs.validators.ge(2))
    hidden_dim: int = attrs.field(default=128, validator=_positive)
    goal_dim: int = attrs.field(default=8, validator=_positive)
    blend: float = attrs.field(default=0.5, validator=_unit_closed)
    prediction_coef: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))


class _FamilyPlugin(CuriosityPlugin):
    """Builds the mechanism class named by ``mechanism`` (imported only when built)."""

    mechanism: ClassVar[str]
    # What the mechanism observes: the stage's latents, or the world's own images.
    observes: ClassVar[Literal["latents", "images"]] = "latents"

    def build(
        self,
        options: Any,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
    ) -> Curiosity:
        """Build the networks and the optimizer on ``context.device``.

        Args:
            options: The plugin's options.
            context: Device (the networks draw from torch's global RNG, seeded by the host).
            observation_spec: The representation stage's latents: ``(D,)`` vectors or
                ``(N, D)`` tokens (flattened to ``N * D``); ``ttt-e2e`` takes images.
            action_spec: Discrete or multi-discrete; actions enter the forward dynamics one-hot.

        Returns:
            The mechanism.

        Raises:
            PluginError: If a mechanism predicting latents is handed raw images.
        """
        import importlib

        if self.observes == "latents":
            require_latents(self.name, observation_spec)

        module_name, _, class_name = self.mechanism.rpartition(".")
        module = importlib.import_module(f"pamiqx_fd_curiosity.{module_name}")
        # Each mechanism class takes (options, observation spec, action spec, device).
        make: Callable[[Any, ObservationSpec, ActionSpec, str], Curiosity]
        make = getattr(module, class_name)
        return make(options, observation_spec, action_spec, context.device)


class AdversarialPlugin(_FamilyPlugin):
    """Adversarial forward dynamics: reward = the FD's imagination-averaged prediction error."""

    name = "adversarial"
    Options = AdversarialOptions
    mechanism = "mechanisms.AdversarialCuriosity"


class DeltaMinimizePlugin(_FamilyPlugin):
    """Learning progress: reward -(e_t - e_{t-1}), steps where the world became more predictable."""

    name = "delta-minimize"
    Options = DeltaMinimizeOptions
    mechanism = "mechanisms.DeltaMinimizeCuriosity"


class MetaPlugin(_FamilyPlugin):
    """Meta forward dynamics: L levels predicting residuals, reward sum_i c_i * mean(δ_i^2)."""

    name = "meta"
    Options = MetaOptions
    mechanism = "meta.MetaCuriosity"


class HierarchicalPlugin(_FamilyPlugin):
    """Layers of FD + policy at timescales 1, 8, ...: surprise minimised below, sought above."""

    name = "hierarchical"
    Options = HierarchicalOptions
    mechanism = "hierarchical.HierarchicalCuriosity"


class UnifiedPlugin(_FamilyPlugin):
    """One recurrent network predicts, acts (plus an internal action); reward: its error."""

    name = "unified"
    Options = UnifiedOptions
    mechanism = "unified.UnifiedCuriosity"


class TTTPlugin(_FamilyPlugin):
    """Deep surprise: a test-time-training core; reward from its surprisal, with fatigue."""

    name = "ttt"
    Options = TTTOptions
    mechanism = "unified.TTTCuriosity"


class TTTE2EPlugin(_FamilyPlugin):
    """``ttt`` with the image encoder trained end to end through the same network and losses."""

    name = "ttt-e2e"
    Options = TTTE2EOptions
    mechanism = "unified.TTTE2ECuriosity"
    observes = "images"


@hookimpl
def pamiqx_register_curiosities() -> list[type[CuriosityPlugin]]:
    """Return the forward-dynamics curiosity family."""
    return [
        AdversarialPlugin,
        DeltaMinimizePlugin,
        MetaPlugin,
        HierarchicalPlugin,
        UnifiedPlugin,
        TTTPlugin,
        TTTE2EPlugin,
    ]
