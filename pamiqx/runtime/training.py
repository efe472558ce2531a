"""One training phase on a collected rollout: curiosity rewards, curiosity update, PPO."""

from __future__ import annotations

import torch

from pamiqx.api.curiosity import Curiosity
from pamiqx.faults import (
    UNNAMED_CURIOSITY,
    PluginIdentity,
    blame,
    check_metrics,
    check_rewards,
)
from pamiqx.learner.batch import RolloutBatch
from pamiqx.learner.ppo import PPOLearner


def train_phase(
    batch: RolloutBatch,
    curiosity: Curiosity,
    learner: PPOLearner,
    who: PluginIdentity = UNNAMED_CURIOSITY,
) -> dict[str, float]:
    """Score the rollout with the curiosity, let it train, then train the policy.

    Rewards are computed before the curiosity trains on the same batch, so a
    transition is scored by a model that has not yet seen it.

    Args:
        batch: The rollout on the training device.
        curiosity: The curiosity mechanism.
        learner: The PPO learner.
        who: The curiosity's plugin, named if it raises or returns bad values.

    Returns:
        PPO metrics and the curiosity's own metrics under ``curiosity/``.

    Raises:
        PluginFault: The curiosity raised, or returned rewards or metrics that break
            its contract (wrong shape, nan or inf).
    """
    transitions = batch.transitions(online=curiosity.style == "online")
    with torch.no_grad(), blame(who, "rewards()"):
        raw = curiosity.rewards(transitions)
    intrinsic = check_rewards(who, "rewards()", raw, tuple(batch.rewards_ext.shape))
    with blame(who, "update()"):
        updated = curiosity.update(transitions)
    metrics = {f"curiosity/{k}": v for k, v in check_metrics(who, "update()", updated).items()}
    metrics.update(learner.train(batch, intrinsic))
    return metrics
