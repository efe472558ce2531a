"""MiniGrid coverage: the fraction of reachable floor cells the agent has stood on.

A wrapper for the ``gymnasium`` environment plugin, listed in its ``wrappers``
option as ``pamiqx.envs.minigrid_coverage:MiniGridCoverage``. It needs
``minigrid`` (``pip install 'pamiqx[minigrid]'``); pamiqx imports this module
only when an experiment names it.

Coverage is counted over the whole run in one fixed layout, as ``sim-maze``'s
``coverage`` is over its one map: list ``pamiqx.envs.gym_wrappers:FixedSeed``
before this wrapper so that every episode restarts in the same world. Episodes
then add to one set of visited cells, and the metric asks how much of the world
the agent has reached in all its episodes so far, never only in the last one.
A reset that brings another layout is an error rather than a silent restart of
the count.

The agent never observes the metric: the ``gymnasium`` plugin reports it through
:meth:`MiniGridCoverage.evaluation_metrics`, with the checkpoint state from
:meth:`MiniGridCoverage.state_dict`.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from minigrid.core.grid import Grid
from minigrid.minigrid_env import MiniGridEnv

from pamiqx.api.errors import PluginError


def reachable_cells(grid: Grid, start: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Return a ``(width, height)`` mask of the cells the agent can stand on from ``start``.

    The agent walks on empty cells, floor tiles and the goal, and through doors
    (closed and locked ones open with a toggle or a key). Walls, lava (it ends
    the episode) and objects that cannot be walked over (keys, balls, boxes)
    are not floor.

    Args:
        grid: The MiniGrid grid.
        start: The agent's start cell ``(x, y)``.

    Returns:
        Boolean mask indexed ``[x, y]``, True on every reachable floor cell.
    """

    def walkable(x: int, y: int) -> bool:
        cell = grid.get(x, y)
        if cell is None or cell.type == "door":
            return True
        return bool(cell.can_overlap()) and cell.type != "lava"

    mask = np.zeros((grid.width, grid.height), dtype=np.bool_)
    mask[start] = True
    queue = deque([start])
    while queue:
        x, y = queue.popleft()
        for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            inside = 0 <= nx < grid.width and 0 <= ny < grid.height
            if inside and not mask[nx, ny] and walkable(nx, ny):
                mask[nx, ny] = True
                queue.append((nx, ny))
    return mask


class MiniGridCoverage(gym.Wrapper[Any, Any, Any, Any]):
    """Count the reachable floor cells of a fixed MiniGrid layout that the agent has visited.

    Attributes:
        visited: ``(width, height)`` mask of the cells the agent has stood on.
        reachable: ``(width, height)`` mask of the floor cells reachable from the start.
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        """Wrap a MiniGrid environment (any wrappers around it are fine).

        Raises:
            PluginError: ``env`` is not a MiniGrid environment.
        """
        super().__init__(env)
        world = env.unwrapped
        if not isinstance(world, MiniGridEnv):
            raise PluginError(
                "gymnasium: wrapper 'pamiqx.envs.minigrid_coverage:MiniGridCoverage' needs a "
                f"MiniGrid environment (a MiniGrid-* id), got {type(world).__name__}."
            )
        self._world = world
        self._layout: npt.NDArray[np.uint8] | None = None
        self.visited = np.zeros((0, 0), dtype=np.bool_)
        self.reachable = np.zeros((0, 0), dtype=np.bool_)

    @property
    def coverage(self) -> float:
        """Fraction of reachable floor cells visited in the run, in ``(0, 1]`` after a reset."""
        total = int(self.reachable.sum())
        return float((self.visited & self.reachable).sum()) / total if total else 0.0

    def _visit(self) -> None:
        x, y = self._world.agent_pos
        self.visited[int(x), int(y)] = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the world; the first reset fixes the layout whose cells are counted.

        Raises:
            PluginError: The reset brought a different layout (no ``FixedSeed`` before
                this wrapper).
        """
        observation, info = self.env.reset(seed=seed, options=options)
        world = self._world
        layout = world.grid.encode()
        if self._layout is None:
            self._layout = layout
            self.visited = np.zeros((world.width, world.height), dtype=np.bool_)
            x, y = world.agent_pos
            self.reachable = reachable_cells(world.grid, (int(x), int(y)))
        elif not np.array_equal(layout, self._layout):
            raise PluginError(
                "gymnasium: MiniGridCoverage counts the cells of one layout over the whole run, "
                "but this reset generated another layout; list "
                "'pamiqx.envs.gym_wrappers:FixedSeed' before it in the experiment's "
                "[environment] wrappers so every episode restarts in the same world."
            )
        self._visit()
        return observation, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step the world and mark the agent's cell as visited."""
        result = self.env.step(action)
        self._visit()
        return result

    def evaluation_metrics(self) -> dict[str, float]:
        """Return ``coverage`` (read by the ``gymnasium`` plugin, never shown to the agent)."""
        return {"coverage": self.coverage} if self._layout is not None else {}

    def state_dict(self) -> dict[str, Any]:
        """Return the layout and the visited cells, for a checkpoint."""
        if self._layout is None:
            return {}
        return {"layout": self._layout, "visited": self.visited, "reachable": self.reachable}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` after the world's first reset.

        Raises:
            PluginError: The saved layout is not the current one.
        """
        if not state:
            return
        layout = np.asarray(state["layout"], dtype=np.uint8)
        if self._layout is not None and not np.array_equal(layout, self._layout):
            raise PluginError(
                "gymnasium: the checkpoint's MiniGrid layout differs from the resumed run's; "
                "was the experiment's environment id, seed or wrappers changed?"
            )
        self._layout = layout
        self.visited = np.asarray(state["visited"], dtype=np.bool_).copy()
        self.reachable = np.asarray(state["reachable"], dtype=np.bool_).copy()
