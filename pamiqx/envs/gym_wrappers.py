"""Gymnasium wrappers for the ``gymnasium`` environment plugin, listed in its ``wrappers`` option.

Write them as ``pamiqx.envs.gym_wrappers:Name``. They depend on Gymnasium only;
MiniGrid's coverage lives in :mod:`pamiqx.envs.minigrid_coverage`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym


class FixedSeed(gym.Wrapper[Any, Any, Any, Any]):
    """Reset every episode with the seed of the first reset: one layout for the whole run.

    Procedurally generated worlds (MiniGrid) draw a new layout, start and goal
    at every ``reset()`` without a seed. Behind this wrapper every such reset
    reuses the last seed given, so each episode restarts in the same world, as
    the built-in ``sim-maze`` keeps one map per run. The ``gymnasium`` plugin
    seeds the first reset with the experiment's seed (plus 1000 per parallel
    world), so runs with different seeds still see different layouts. The
    environment's random generator restarts with the seed too, so a world with
    random dynamics replays them; MiniGrid's layouts are its only randomness.
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        """Wrap ``env``; the first ``reset(seed=...)`` fixes the seed."""
        super().__init__(env)
        self.fixed_seed: int | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset with ``seed`` when given (and remember it), else with the remembered seed."""
        if seed is not None:
            self.fixed_seed = seed
        return self.env.reset(seed=self.fixed_seed, options=options)
