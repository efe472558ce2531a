"""The maze world: a first-person agent walking a procedurally generated maze.

A display-free stand-in for VRChat. The agent sees only rendered RGB frames; its locomotion
mirrors VRChat's OSC inputs (``Vertical``, ``Horizontal``, ``LookHorizontal``, ``Jump``,
``Run``). The world never ends: there are no episodes, only :meth:`MazeWorld.step`.
Position, heading and coverage are exposed for evaluation, never as observations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, TypeGuard

import numpy as np
import numpy.typing as npt

from pamiqx.api.environment import DISCRETE_ACTIONS, MULTI_DISCRETE_NVEC
from pamiqx.envs.maze.layout import MazeMap, generate_maze
from pamiqx.envs.maze.render import Renderer

__all__ = ["AGENT_RADIUS", "DISCRETE_ACTIONS", "MULTI_DISCRETE_NVEC", "MazeWorld"]

# Jump is accepted and ignored in the maze (it is flat); Run 1 doubles the move speed.
AGENT_RADIUS = 0.2
"""Half the side of the agent's square collision box, in cells."""

_AXIS_VALUE = (0, 1, -1)  # multi-discrete axis value -> signed input
# Discrete action -> (Vertical, Horizontal, LookHorizontal) signed inputs.
_DISCRETE_INPUTS = (
    (0, 0, 0),
    (1, 0, 0),
    (-1, 0, 0),
    (0, -1, 0),
    (0, 1, 0),
    (0, 0, -1),
    (0, 0, 1),
)
_EPS = 1e-6  # gap kept between the agent's box and a wall after a blocked move
_MAX_MOVE_SPEED = 0.45  # running (2x) must stay below 1 + 2 * radius so nothing is skipped
_TAU = 2.0 * math.pi


class MazeWorld:
    """A first-person maze world rendered by ray casting.

    The map is generated from ``seed``; the same seed and the same action sequence always
    give the same frames. The agent is a square of half-side :data:`AGENT_RADIUS` that slides
    along walls instead of stopping dead.

    Args:
        seed: Seed of the generated map (non-negative).
        height: Frame height in pixels.
        width: Frame width in pixels.
        rooms: Number of rooms in the map.
        map_size: Map width and height in cells (at least 7).
        action_mode: ``"discrete"`` (an int indexing :data:`DISCRETE_ACTIONS`) or
            ``"multi_discrete"`` (5 ints, see :data:`MULTI_DISCRETE_NVEC`).
        move_speed: Walking distance per step, in cells (0 < speed <= 0.45).
        turn_speed_deg: Turn per step, in degrees (0 < turn <= 180).
        fov_deg: Horizontal field of view, in degrees.

    Raises:
        ValueError: If an argument is out of range.
    """

    def __init__(
        self,
        seed: int,
        height: int = 64,
        width: int = 64,
        rooms: int = 6,
        map_size: int = 21,
        action_mode: Literal["discrete", "multi_discrete"] = "discrete",
        move_speed: float = 0.15,
        turn_speed_deg: float = 15.0,
        fov_deg: float = 66.0,
    ) -> None:
        if action_mode not in ("discrete", "multi_discrete"):
            raise ValueError(
                f"action_mode must be 'discrete' or 'multi_discrete', got {action_mode!r}"
            )
        if not 0.0 < float(move_speed) <= _MAX_MOVE_SPEED:
            raise ValueError(f"move_speed must be in (0, {_MAX_MOVE_SPEED}], got {move_speed!r}")
        if not 0.0 < float(turn_speed_deg) <= 180.0:
            raise ValueError(f"turn_speed_deg must be in (0, 180], got {turn_speed_deg!r}")
        self._maze = generate_maze(seed, rooms=rooms, width=map_size, height=map_size)
        self._renderer = Renderer(height, width, fov_deg)
        self._seed = int(seed)
        self._action_mode: Literal["discrete", "multi_discrete"] = action_mode
        self._move_speed = float(move_speed)
        self._turn = math.radians(float(turn_speed_deg))
        # Plain nested lists: collision checks touch a few cells, where list lookups beat numpy.
        self._solid: list[list[bool]] = (self._maze.cells != 0).tolist()
        self._reachable_cells = self._maze.num_reachable
        self._x, self._y = self._maze.start
        self._heading = self._maze.start_heading
        self._visited = np.zeros(self._maze.cells.shape, dtype=np.bool_)
        self._visited_count = 0
        self._frame: npt.NDArray[np.uint8] | None = None
        self.reset()

    # -- evaluation-only state -------------------------------------------------------------

    @property
    def maze(self) -> MazeMap:
        """The generated map (for evaluation and debugging; never shown to the agent)."""
        return self._maze

    @property
    def seed(self) -> int:
        """The map seed."""
        return self._seed

    @property
    def action_mode(self) -> Literal["discrete", "multi_discrete"]:
        """The action format :meth:`step` accepts."""
        return self._action_mode

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """Shape ``(height, width, 3)`` of the frames."""
        return (self._renderer.height, self._renderer.width, 3)

    @property
    def position(self) -> tuple[float, float]:
        """Agent position ``(x, y)`` in cells."""
        return (self._x, self._y)

    @property
    def heading(self) -> float:
        """Agent heading in radians, in ``[0, 2 pi)``; 0 faces +x, turning right increases it."""
        return self._heading

    @property
    def visited_cells(self) -> int:
        """Number of distinct floor cells the agent's centre has been in since :meth:`reset`."""
        return self._visited_count

    @property
    def reachable_cells(self) -> int:
        """Number of floor cells reachable from the start."""
        return self._reachable_cells

    @property
    def coverage(self) -> float:
        """Fraction of reachable floor cells visited since :meth:`reset`, in ``(0, 1]``."""
        return self._visited_count / self._reachable_cells

    # -- simulation ------------------------------------------------------------------------

    def reset(self) -> npt.NDArray[np.uint8]:
        """Put the agent at the start pose, forget visited cells and return the frame.

        Returns:
            The frame seen from the start pose.
        """
        self._x, self._y = self._maze.start
        self._heading = self._maze.start_heading
        self._visited[:] = False
        self._visited_count = 0
        self._visit()
        return self._render()

    def observe(self) -> npt.NDArray[np.uint8]:
        """Return the current frame.

        Returns:
            A fresh ``(height, width, 3)`` uint8 RGB array (safe to modify).
        """
        if self._frame is None:
            return self._render()
        return self._frame.copy()

    def step(
        self, action: int | Sequence[int] | npt.NDArray[np.integer[Any]]
    ) -> npt.NDArray[np.uint8]:
        """Apply one action and return the new frame.

        The move uses the heading before this step's turn; both happen in the same step.

        Args:
            action: In discrete mode an int in ``range(len(DISCRETE_ACTIONS))``; in
                multi-discrete mode 5 ints bounded by :data:`MULTI_DISCRETE_NVEC`.

        Returns:
            The frame seen after the action.

        Raises:
            ValueError: If the action has the wrong type, shape or values for the mode.
        """
        if self._action_mode == "discrete":
            vertical, horizontal, look = _DISCRETE_INPUTS[_parse_discrete(action)]
            speed = self._move_speed
        else:
            values = _parse_multi_discrete(action)
            vertical, horizontal, look = (_AXIS_VALUE[v] for v in values[:3])
            speed = self._move_speed * (2.0 if values[4] else 1.0)  # values[3] (Jump) ignored

        if vertical or horizontal:
            cos_h, sin_h = math.cos(self._heading), math.sin(self._heading)
            # Forward is (cos, sin); right is a quarter turn clockwise on screen: (-sin, cos).
            dx = vertical * cos_h - horizontal * sin_h
            dy = vertical * sin_h + horizontal * cos_h
            if vertical and horizontal:  # diagonal input moves at the same speed
                dx, dy = dx * math.sqrt(0.5), dy * math.sqrt(0.5)
            self._move(dx * speed, dy * speed)
            self._visit()
        if look:
            self._heading = (self._heading + look * self._turn) % _TAU
        return self._render()

    def get_state(self) -> dict[str, object]:
        """Return a checkpoint of the agent's state (the map is regenerated from the seed).

        Returns:
            ``{"seed", "x", "y", "heading", "visited"}``; ``visited`` is a copy of the boolean
            ``[y, x]`` grid of visited cells.
        """
        return {
            "seed": self._seed,
            "x": self._x,
            "y": self._y,
            "heading": self._heading,
            "visited": self._visited.copy(),
        }

    def set_state(self, state: dict[str, object]) -> None:
        """Restore a checkpoint made by :meth:`get_state`.

        Args:
            state: The checkpoint; the world must have been built with the same map.

        Raises:
            ValueError: If the checkpoint does not fit this world.
        """
        missing = {"x", "y", "heading", "visited"} - state.keys()
        if missing:
            raise ValueError(f"maze world state lacks {sorted(missing)}")
        x = _as_float("x", state["x"])
        y = _as_float("y", state["y"])
        heading = _as_float("heading", state["heading"])
        raw = np.asarray(state["visited"])
        # Accept 0/1 integers too, in case a checkpoint format stored the mask as numbers.
        if raw.dtype != np.bool_ and not (
            raw.dtype.kind in "iu" and np.all((raw == 0) | (raw == 1))
        ):
            raise ValueError(f"visited must be a boolean mask, got dtype {raw.dtype}")
        visited = raw.astype(np.bool_)
        if "seed" in state and state["seed"] != self._seed:
            raise ValueError(f"state is for seed {state['seed']!r}, this world has {self._seed}")
        if visited.shape != self._visited.shape:
            raise ValueError(f"visited has shape {visited.shape}, expected {self._visited.shape}")
        if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(heading)):
            raise ValueError("state position and heading must be finite")
        if self._blocked(x, y):
            raise ValueError(f"state position ({x}, {y}) overlaps a wall")
        if np.any(visited & ~self._maze.reachable):
            raise ValueError("visited marks cells that are not reachable floor")
        self._x, self._y, self._heading = x, y, heading % _TAU
        self._visited[:] = visited
        self._visited_count = int(np.count_nonzero(visited))
        self._visit()
        self._render()

    # -- internals -------------------------------------------------------------------------

    def _render(self) -> npt.NDArray[np.uint8]:
        """Render the current view, cache it and return a copy the caller may keep."""
        self._frame = self._renderer.render(self._maze, self._x, self._y, self._heading)
        return self._frame.copy()

    def _visit(self) -> None:
        """Mark the agent's current cell as visited."""
        cx, cy = int(self._x), int(self._y)
        if not self._visited[cy, cx]:
            self._visited[cy, cx] = True
            self._visited_count += 1

    def _blocked(self, x: float, y: float) -> bool:
        """Whether the agent's box centred at ``(x, y)`` overlaps a solid cell."""
        r = AGENT_RADIUS
        x0, x1 = math.floor(x - r), math.floor(x + r)
        y0, y1 = math.floor(y - r), math.floor(y + r)
        solid = self._solid
        if y0 < 0 or x0 < 0 or y1 >= len(solid) or x1 >= len(solid[0]):
            return True
        return any(solid[cy][cx] for cy in range(y0, y1 + 1) for cx in range(x0, x1 + 1))

    def _span(self, y: float) -> range:
        """Cells along one axis overlapped by the agent's box centred at coordinate ``y``."""
        return range(math.floor(y - AGENT_RADIUS), math.floor(y + AGENT_RADIUS) + 1)

    def _move(self, dx: float, dy: float) -> None:
        """Move by ``(dx, dy)`` one axis at a time, stopping flush at walls (sliding)."""
        r = AGENT_RADIUS
        solid = self._solid
        if dx:
            rows = self._span(self._y)
            x = self._x + dx
            # Columns newly overlapped by the box, nearest first; stop before the first wall.
            if dx > 0:
                for col in range(math.floor(self._x + r) + 1, math.floor(x + r) + 1):
                    if any(solid[row][col] for row in rows):
                        x = col - r - _EPS
                        break
            else:
                for col in range(math.floor(self._x - r) - 1, math.floor(x - r) - 1, -1):
                    if any(solid[row][col] for row in rows):
                        x = col + 1 + r + _EPS
                        break
            if not self._blocked(x, self._y):  # guards float edge cases at the clamp
                self._x = x
        if dy:
            cols = self._span(self._x)
            y = self._y + dy
            if dy > 0:
                for row in range(math.floor(self._y + r) + 1, math.floor(y + r) + 1):
                    if any(solid[row][col] for col in cols):
                        y = row - r - _EPS
                        break
            else:
                for row in range(math.floor(self._y - r) - 1, math.floor(y - r) - 1, -1):
                    if any(solid[row][col] for col in cols):
                        y = row + 1 + r + _EPS
                        break
            if not self._blocked(self._x, y):
                self._y = y


def _is_int(value: object) -> TypeGuard[int | np.integer[Any]]:
    """Whether ``value`` is an integer (Python or numpy), excluding bools."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _as_float(name: str, value: object) -> float:
    """Convert a checkpointed real number to ``float``.

    Raises:
        ValueError: If ``value`` is not a real number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"state {name} must be a number, got {value!r}")
    return float(value)


def _parse_discrete(action: object) -> int:
    """Validate a discrete action and return it as an int.

    Raises:
        ValueError: If ``action`` is not an int in ``range(len(DISCRETE_ACTIONS))``.
    """
    if isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu":
        action = action.item()
    if not _is_int(action):
        raise ValueError(f"discrete action must be an int, got {action!r}")
    value = int(action)
    if not 0 <= value < len(DISCRETE_ACTIONS):
        raise ValueError(f"discrete action must be in 0..{len(DISCRETE_ACTIONS) - 1}, got {value}")
    return value


def _parse_multi_discrete(action: object) -> tuple[int, ...]:
    """Validate a multi-discrete action and return it as a tuple of 5 ints.

    Raises:
        ValueError: If ``action`` is not 5 ints each in ``range(MULTI_DISCRETE_NVEC[i])``.
    """
    if isinstance(action, np.ndarray):
        if action.shape != (len(MULTI_DISCRETE_NVEC),) or action.dtype.kind not in "iu":
            raise ValueError(
                f"multi-discrete action must be {len(MULTI_DISCRETE_NVEC)} integers, "
                f"got array of shape {action.shape} and dtype {action.dtype}"
            )
        values = tuple(int(v) for v in action.tolist())
    elif isinstance(action, Sequence) and not isinstance(action, str | bytes):
        if len(action) != len(MULTI_DISCRETE_NVEC) or not all(_is_int(v) for v in action):
            raise ValueError(
                f"multi-discrete action must be {len(MULTI_DISCRETE_NVEC)} integers, got {action!r}"
            )
        values = tuple(int(v) for v in action)
    else:
        raise ValueError(f"multi-discrete action must be a sequence of ints, got {action!r}")
    for value, size in zip(values, MULTI_DISCRETE_NVEC, strict=True):
        if not 0 <= value < size:
            raise ValueError(
                f"multi-discrete action {values} out of range for nvec {MULTI_DISCRETE_NVEC}"
            )
    return values
