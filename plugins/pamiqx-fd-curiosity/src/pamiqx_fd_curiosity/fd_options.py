"""Options of the mechanisms beside the policy: ``adversarial``, ``delta-minimize``, ``meta``.

:class:`FDOptions` holds what every forward-dynamics mechanism takes: its core,
optimizer and training regime (``rollouts`` or the reference's ``replay-windows``).
Import-light: attrs only, so ``pamiqx validate`` never imports torch.
"""

from __future__ import annotations

from typing import Literal

import attrs

# Validators the option classes of the family share (owned_options.py too).
positive = attrs.validators.gt(0)
positive_float = attrs.validators.gt(0.0)
unit_open = [attrs.validators.gt(0.0), attrs.validators.lt(1.0)]
unit_closed = [attrs.validators.ge(0.0), attrs.validators.le(1.0)]


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
            ``core_depth = 8``), or a ``ttt`` stack (the same blocks around the
            reference's test-time-training layer, 4 heads: ``hidden_dim`` must be a
            multiple of 4; its windows step rather than scan).
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

    hidden_dim: int = attrs.field(default=256, validator=positive)
    core: Literal["gru", "qlstm", "qgru", "ttt"] = attrs.field(
        default="gru", validator=attrs.validators.in_(("gru", "qlstm", "qgru", "ttt"))
    )
    core_depth: int = attrs.field(default=2, validator=positive)
    core_ff_ratio: float = attrs.field(default=4.0, validator=positive_float)
    lr: float = attrs.field(default=1e-3, validator=positive_float)
    grad_clip: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))
    epochs: int = attrs.field(default=1, validator=positive)
    optimizer: Literal["adam", "adamw", "sgd-nesterov"] = attrs.field(
        default="adam", validator=attrs.validators.in_(("adam", "adamw", "sgd-nesterov"))
    )
    weight_decay: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    regime: Literal["rollouts", "replay-windows"] = attrs.field(
        default="rollouts", validator=attrs.validators.in_(("rollouts", "replay-windows"))
    )
    replay_size: int = attrs.field(default=1000, validator=positive)
    train_every: int = attrs.field(default=128, validator=positive)
    windows: int = attrs.field(default=32, validator=positive)
    window_length: int = attrs.field(default=256, validator=positive)
    windows_per_step: int = attrs.field(default=1, validator=positive)

    @property
    def extra_window_steps(self) -> int:
        """Steps a replayed window holds beyond ``window_length`` (imagination: ``K - 1``)."""
        return 0

    def __attrs_post_init__(self) -> None:
        """Check the options that only make sense together.

        Raises:
            ValueError: If a ``ttt`` core's width does not split into its heads, if
                ``window_length`` (plus the imagination steps) exceeds ``replay_size``,
                or ``train_every`` does (steps would be dropped unseen).
        """
        if self.core == "ttt" and self.hidden_dim % 4:
            raise ValueError(
                f"curiosity.hidden_dim ({self.hidden_dim}) must be a multiple of 4 with "
                "curiosity.core = 'ttt' (its 4 heads split the width)"
            )
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

    max_imagination_steps: int = attrs.field(default=3, validator=positive)

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

    max_imagination_steps: int = attrs.field(default=3, validator=positive)


@attrs.frozen
class DeltaMinimizeOptions(ImaginationOptions):
    """Options of ``delta-minimize`` (reference default K=5).

    Attributes:
        max_imagination_steps: ``K`` (5 in the reference).
    """

    max_imagination_steps: int = attrs.field(default=5, validator=positive)


@attrs.frozen
class MetaOptions(FDOptions):
    """Options of ``meta`` (no imagination: each level's 1-step prediction is scored).

    Attributes:
        num_meta_levels: ``L``, the forward-dynamics levels (2 in the reference).
        coefficients: Reward coefficients ``c_i``, bottom level first:
            ``maximize_top`` ``[-1, ..., -1, +1]``, ``all_minimize`` (all -1),
            ``all_maximize`` (all +1) or ``linear`` (-1 to +1).
    """

    num_meta_levels: int = attrs.field(default=2, validator=positive)
    coefficients: Literal["maximize_top", "all_minimize", "all_maximize", "linear"] = "maximize_top"
