"""One training phase on a rollout: curiosity rewards and update, PPO, then the representation."""

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
from pamiqx.runtime.stage import Stage


def train_phase(
    batch: RolloutBatch,
    curiosity: Curiosity,
    learner: PPOLearner,
    who: PluginIdentity = UNNAMED_CURIOSITY,
    stage: Stage | None = None,
) -> dict[str, float]:
    """Score the rollout with the curiosity, let it train, train the policy, then the stage.

    Rewards are computed before the curiosity trains on the same batch, so a
    transition is scored by a model that has not yet seen it. The representation
    trains last, on its own buffer and schedule, so the whole batch was scored,
    acted on and learnt from with one version of the latents.

    Args:
        batch: The rollout on the training device.
        curiosity: The curiosity mechanism.
        learner: The PPO learner.
        who: The curiosity's plugin, named if it raises or returns bad values.
        stage: The run's representation (None: nothing to train).

    Returns:
        PPO metrics, the curiosity's own metrics under ``curiosity/`` and the
        representation's under ``representation/``.

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
    if stage is not None:
        metrics.update(stage.update())
    return metrics
