"""The ``[policy]`` table: every setting of the built-in PPO learner, validated in one place.

The experiment schema uses :class:`PPOOptions` as it is, the learner and the
loss read it directly, so a value that passes ``pamiqx validate`` is a value the
learner accepts, and an invalid one fails there, naming its key.

The defaults are pamiqx's own PPO (train once per collected rollout, Adam,
centred advantages, one joint ratio, return-normalised intrinsic rewards);
``experiments/reference/ppo.toml`` holds the reference experiments' values
(replay windows, SGD with Nesterov momentum, ...) for experiment files to
``extends``.
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
        lr: Learning rate (reference 1e-4).
        optimizer: ``adam`` (Adam, eps 1e-5), or ``sgd-nesterov`` (SGD with Nesterov
            momentum 0.9, the reference); ``sgd`` is the earlier name of ``sgd-nesterov``.
        weight_decay: L2 weight decay (reference 1e-4).
        regime: When and on what the policy trains. ``rollouts``: once per collected
            rollout of ``rollout_steps`` steps, ``epochs`` passes over it in
            minibatches. ``replay-windows`` (the reference): the learner keeps the
            last ``replay_size`` steps of every world; after every ``train_every``
            new steps it trains one pass on ``windows`` random windows of
            ``window_length`` consecutive steps, each started from its stored
            recurrent state (``rollout_steps`` must then equal ``train_every``).
        rollout_steps: Steps per world collected before each training phase.
        epochs: Passes over each rollout (``rollouts`` regime; replay windows take one).
        minibatch_size: Transitions per gradient step (whole sequences or windows
            when recurrent or under ``replay-windows``: at least one per step).
        sequence_length: Window of consecutive steps for a recurrent policy (``rollouts``).
        replay_size: Steps per world the replay buffer keeps, FIFO (reference 1000).
        train_every: New steps per world between training calls under
            ``replay-windows`` (reference 128).
        windows: Random windows per training call under ``replay-windows`` (reference 32).
        window_length: Consecutive steps per window under ``replay-windows``
            (reference 256); at most ``replay_size``. Until the buffer holds that
            many steps, training calls only record rewards.
        gamma_ext: Discount of the extrinsic reward (episodic).
        gamma_int: Discount of the intrinsic reward (non-episodic).
        gae_lambda: GAE lambda (reference 0.95).
        clip_range: PPO ratio clip (reference 0.1).
        value_clip_range: Clip of the value update around the old value (absent: none;
            reference 0.1).
        value_coef: Weight of the value losses (reference 0.5).
        entropy_coef: Weight of the entropy bonus (reference 0.01).
        max_grad_norm: Gradient-norm clip.
        ext_coef: Weight of extrinsic advantages.
        int_coef: Weight of intrinsic advantages.
        normalize_advantages: Scale the mixed advantages by their std (per rollout;
            per minibatch under ``replay-windows``, as the reference).
        advantage_centering: Subtract the advantages' mean before scaling (``true``);
            ``false`` only divides by the std (the reference).
        multi_discrete_ratio: ``joint``: one probability ratio per step, of the joint
            action, and the summed entropy; ``per-action`` (the reference): one ratio
            per sub-action of a multi-discrete action (and one for the internal
            action), each clipped, and the mean of their entropies. Equal for a
            discrete action without an internal one.
        intrinsic_normalisation: ``return``: divide intrinsic rewards by the running
            std of their discounted return (RND); ``none``: raw rewards (the reference).
    """

    lr: float = attrs.field(default=3e-4, validator=_positive)
    optimizer: Literal["adam", "sgd-nesterov", "sgd"] = "adam"
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative)
    regime: Literal["rollouts", "replay-windows"] = "rollouts"
    rollout_steps: int = attrs.field(default=128, validator=_positive_int)
    epochs: int = attrs.field(default=4, validator=_positive_int)
    minibatch_size: int = attrs.field(default=64, validator=_positive_int)
    sequence_length: int = attrs.field(default=32, validator=_positive_int)
    replay_size: int = attrs.field(default=1000, validator=_positive_int)
    train_every: int = attrs.field(default=128, validator=_positive_int)
    windows: int = attrs.field(default=32, validator=_positive_int)
    window_length: int = attrs.field(default=256, validator=_positive_int)
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
    advantage_centering: bool = True
    multi_discrete_ratio: Literal["joint", "per-action"] = "joint"
    intrinsic_normalisation: Literal["return", "none"] = "return"

    def __attrs_post_init__(self) -> None:
        """Check the keys that only make sense together (under ``replay-windows``).

        Raises:
            ValueError: Naming both keys of a pair that disagrees.
        """
        if self.regime != "replay-windows":
            return
        if self.rollout_steps != self.train_every:
            raise ValueError(
                f"policy.rollout_steps ({self.rollout_steps}) and policy.train_every "
                f"({self.train_every}) must be equal under policy.regime = 'replay-windows': "
                "the collector hands a batch over every policy.rollout_steps steps and the "
                "learner trains on each; set both to the same value"
            )
        if self.train_every > self.replay_size:
            raise ValueError(
                f"policy.train_every ({self.train_every}) is more than policy.replay_size "
                f"({self.replay_size}): the replay buffer would drop steps never trained on"
            )
        if self.window_length > self.replay_size:
            raise ValueError(
                f"policy.window_length ({self.window_length}) is more than "
                f"policy.replay_size ({self.replay_size}): no window fits in the buffer"
            )
