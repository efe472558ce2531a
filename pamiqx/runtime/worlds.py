"""The worlds of a run, taken together: one observation batch, averaged evaluation metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from pamiqx.api.environment import Environment


def observe_all(
    envs: list[Environment],
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Observe every world: stacked observations, rewards and episode-start flags."""
    steps = [env.observe() for env in envs]
    observations = np.stack([s.observation for s in steps])
    rewards = np.array([s.reward for s in steps], dtype=np.float32)
    starts = np.array([s.episode_start for s in steps], dtype=np.bool_)
    return observations, rewards, starts


def evaluation_metrics(envs: list[Environment]) -> dict[str, float]:
    """Average each world's evaluation metrics (e.g. ``coverage``) over the worlds."""
    collected: dict[str, list[float]] = {}
    for env in envs:
        for key, value in env.evaluation_metrics().items():
            collected.setdefault(key, []).append(value)
    return {k: float(np.mean(v)) for k, v in collected.items()}
