"""Registers the built-in environment plugins (through the same entry points as third parties)."""

from __future__ import annotations

from pamiqx.api import EnvironmentPlugin
from pamiqx.api.hooks import hookimpl
from pamiqx.envs.gymnasium_env import GymnasiumPlugin
from pamiqx.envs.sim_maze import SimMazePlugin


@hookimpl
def pamiqx_register_environments() -> list[type[EnvironmentPlugin]]:
    """Return the built-in environments."""
    return [SimMazePlugin, GymnasiumPlugin]
