"""One training phase on a collected rollout: curiosity rewards, curiosity update, PPO."""

from __future__ import annotations

import torch

from pamiqx.api.curiosity import Curiosity
from pamiqx.learner.batch import RolloutBatch
from pamiqx.learner.ppo import PPOLearner


def train_phase(batch: RolloutBatch, curiosity: Curiosity, learner: PPOLearner) -> dict[str, float]:
    """Score the rollout with the curiosity, let it train, then train the policy.

    Rewards are computed before the curiosity trains on the same batch, so a
    transition is scored by a model that has not yet seen it.

    Args:
        batch: The rollout on the training device.
        curiosity: The curiosity mechanism.
        learner: The PPO learner.

    Returns:
        PPO metrics and the curiosity's own metrics under ``curiosity/``.
    """
    transitions = batch.transitions(online=curiosity.style == "online")
    with torch.no_grad():
        intrinsic = curiosity.rewards(transitions).detach().float()
    if intrinsic.shape != batch.rewards_ext.shape:
        raise ValueError(
            f"curiosity returned rewards of shape {tuple(intrinsic.shape)}, "
            f"expected {tuple(batch.rewards_ext.shape)} (T, E)"
        )
    if not bool(torch.isfinite(intrinsic).all()):
        raise FloatingPointError("curiosity returned non-finite intrinsic rewards")
    metrics = {f"curiosity/{k}": v for k, v in curiosity.update(transitions).items()}
    metrics.update(learner.train(batch, intrinsic))
    return metrics
