"""Maze world: a display-free, numpy-only first-person stand-in for VRChat.

Procedurally generated rooms and corridors (:func:`generate_maze`), drawn by a vectorised
ray-casting renderer, walked by an agent with VRChat-like locomotion (:class:`MazeWorld`).
"""

from pamiqx.envs.maze.layout import MazeMap, generate_maze
from pamiqx.envs.maze.world import DISCRETE_ACTIONS, MULTI_DISCRETE_NVEC, MazeWorld

__all__ = ["DISCRETE_ACTIONS", "MULTI_DISCRETE_NVEC", "MazeMap", "MazeWorld", "generate_maze"]
