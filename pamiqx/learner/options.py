"""The ``[policy]`` table: every setting of the built-in PPO learner, validated in one place.

The experiment schema uses :class:`PPOOptions` as it is, the learner and the
loss read it directly, so a value that passes ``pamiqx validate`` is a value the
learner accepts, and an invalid one fails there, naming its key.
"""

from __future__ import annotations

from typing import Literal

import attrs

_positive_int = attrs.validators.gt(0)
_positive = attrs.validators.gt(0.0)
_non_negative = attrs.validators.ge(0.0)
_unit = [attrs.validators.ge(0.0), attrs.validators.le(1.0)]
_optional_positive = attrs.validators.optional(_positive)


@attrs.frozen
class PPOOptions:
    """The built-in PPO learner.

    Attributes:
        lr: Learning rate.
        optimizer: ``adam``, or ``sgd`` (Nesterov momentum 0.9, as in the reference).
        weight_decay: L2 weight decay.
        rollout_steps: Steps per world collected before each training phase.
        epochs: Passes over each rollout.
        minibatch_size: Transitions per gradient step (whole sequences when recurrent).
        sequence_length: Window of consecutive steps for a recurrent policy.
        gamma_ext: Discount of the extrinsic reward (episodic).
        gamma_int: Discount of the intrinsic reward (non-episodic).
        gae_lambda: GAE lambda.
        clip_range: PPO ratio clip.
        value_clip_range: Clip of the value update around the old value (absent: none).
        value_coef: Weight of the value losses.
        entropy_coef: Weight of the entropy bonus.
        max_grad_norm: Gradient-norm clip.
        ext_coef: Weight of extrinsic advantages.
        int_coef: Weight of intrinsic advantages.
        normalize_advantages: Divide advantages by their std (after centring).
    """

    lr: float = attrs.field(default=3e-4, validator=_positive)
    optimizer: Literal["adam", "sgd"] = "adam"
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative)
    rollout_steps: int = attrs.field(default=128, validator=_positive_int)
    epochs: int = attrs.field(default=4, validator=_positive_int)
    minibatch_size: int = attrs.field(default=64, validator=_positive_int)
    sequence_length: int = attrs.field(default=32, validator=_positive_int)
    gamma_ext: float = attrs.field(default=0.999, validator=_unit)
    gamma_int: float = attrs.field(default=0.99, validator=_unit)
    gae_lambda: float = attrs.field(default=0.95, validator=_unit)
    clip_range: float = attrs.field(default=0.2, validator=_positive)
    value_clip_range: float | None = attrs.field(default=None, validator=_optional_positive)
    value_coef: float = attrs.field(default=0.5, validator=_non_negative)
    entropy_coef: float = attrs.field(default=0.01, validator=_non_negative)
    max_grad_norm: float = attrs.field(default=0.5, validator=_positive)
    ext_coef: float = attrs.field(default=2.0, validator=_non_negative)
    int_coef: float = attrs.field(default=1.0, validator=_non_negative)
    normalize_advantages: bool = True
