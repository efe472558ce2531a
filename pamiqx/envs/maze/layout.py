"""Procedural generation of maze maps: rooms joined by corridors, with object blocks.

A map is a 2D grid indexed ``cells[y, x]``. Cell ``(x, y)`` covers the square
``[x, x + 1) x [y, y + 1)`` in world coordinates, so a world position ``(px, py)`` lies in
cell ``(int(px), int(py))``. A cell value of 0 is floor; a positive value is the material id
of a solid block. Ids ``1..NUM_WALL_MATERIALS`` are walls (1 = corridor wall, the rest are
room walls) and ``OBJECT_MATERIAL_BASE..MAX_MATERIAL`` are free-standing object blocks
(pillars and crates), which the renderer draws in their own colours and textures.
"""

from __future__ import annotations

import math
from collections import deque

import attrs
import numpy as np
import numpy.typing as npt

__all__ = [
    "CORRIDOR_WALL",
    "MAX_MATERIAL",
    "NUM_OBJECT_MATERIALS",
    "NUM_WALL_MATERIALS",
    "OBJECT_MATERIAL_BASE",
    "MazeMap",
    "generate_maze",
]

CORRIDOR_WALL = 1
"""Material id of walls that do not belong to any room."""
NUM_WALL_MATERIALS = 8
"""Wall material ids are ``1..NUM_WALL_MATERIALS``."""
OBJECT_MATERIAL_BASE = 16
"""First material id of object blocks."""
NUM_OBJECT_MATERIALS = 4
"""Object material ids are ``OBJECT_MATERIAL_BASE..OBJECT_MATERIAL_BASE + 3``."""
MAX_MATERIAL = OBJECT_MATERIAL_BASE + NUM_OBJECT_MATERIALS - 1
"""Largest material id a map may contain."""

_MIN_SIDE = 7
_MAX_ROOMS = 64
_PLACEMENT_TRIES_PER_ROOM = 60
# Axis directions (dx, dy) and their headings; y grows "south", so +y is a quarter turn right.
_DIRECTIONS = ((1, 0, 0.0), (0, 1, 0.5 * math.pi), (-1, 0, math.pi), (0, -1, 1.5 * math.pi))

Room = tuple[int, int, int, int]
"""A room's floor rectangle as ``(x, y, width, height)`` in cells."""


def _readonly[T: np.generic](array: npt.NDArray[T]) -> npt.NDArray[T]:
    """Return a read-only copy so a frozen map cannot be altered through its arrays."""
    out = np.array(array, copy=True)
    out.flags.writeable = False
    return out


def _flood_fill(floor: npt.NDArray[np.bool_], start: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Return the floor cells 4-connected to ``start`` (given as ``(x, y)``).

    Args:
        floor: Boolean grid ``[y, x]``, True where the cell is walkable.
        start: Cell ``(x, y)`` to fill from; must be a floor cell.

    Returns:
        Boolean grid of the cells reachable from ``start``.
    """
    height, width = floor.shape
    walkable = floor.tolist()
    seen = [[False] * width for _ in range(height)]
    sx, sy = start
    seen[sy][sx] = True
    queue = deque([(sx, sy)])
    while queue:
        x, y = queue.popleft()
        for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if 0 <= nx < width and 0 <= ny < height and walkable[ny][nx] and not seen[ny][nx]:
                seen[ny][nx] = True
                queue.append((nx, ny))
    return np.array(seen, dtype=np.bool_)


@attrs.frozen(eq=False)
class MazeMap:
    """An immutable maze: wall grid, room layout, object blocks and start pose.

    Build one with :func:`generate_maze` or :meth:`MazeMap.from_cells`; the constructor does
    not check consistency between the fields.

    Attributes:
        cells: ``int16`` grid ``[y, x]``; 0 is floor, a positive value is a material id.
        room_index: ``int16`` grid ``[y, x]``; the room a floor cell belongs to, -1 elsewhere
            (corridors, walls). The renderer tints floor tiles by room.
        reachable: Boolean grid ``[y, x]`` of floor cells 4-connected to the start cell.
        objects: Cells ``(x, y)`` holding object blocks (material ids from
            ``OBJECT_MATERIAL_BASE``).
        rooms: Floor rectangles ``(x, y, width, height)`` of the rooms.
        start: Start position ``(x, y)`` in world coordinates (a cell centre).
        start_heading: Start heading in radians (0 faces +x; turning right increases it).
    """

    cells: npt.NDArray[np.int16]
    room_index: npt.NDArray[np.int16]
    reachable: npt.NDArray[np.bool_]
    objects: tuple[tuple[int, int], ...]
    rooms: tuple[Room, ...]
    start: tuple[float, float]
    start_heading: float

    @property
    def width(self) -> int:
        """Number of cells along x."""
        return int(self.cells.shape[1])

    @property
    def height(self) -> int:
        """Number of cells along y."""
        return int(self.cells.shape[0])

    @property
    def floor_mask(self) -> npt.NDArray[np.bool_]:
        """Boolean grid ``[y, x]``, True on floor cells."""
        return np.asarray(self.cells == 0, dtype=np.bool_)

    @property
    def num_reachable(self) -> int:
        """Number of floor cells reachable from the start."""
        return int(np.count_nonzero(self.reachable))

    @classmethod
    def from_cells(
        cls,
        cells: npt.ArrayLike,
        start: tuple[float, float],
        start_heading: float = 0.0,
        room_index: npt.ArrayLike | None = None,
        rooms: tuple[Room, ...] = (),
    ) -> MazeMap:
        """Build a map from a hand-made grid, checking it and computing reachability.

        Args:
            cells: Integer grid ``[y, x]`` of material ids (0 = floor), at least 3x3, with
                solid border cells and ids in ``0..MAX_MATERIAL``.
            start: Start position ``(x, y)``; must lie in a floor cell.
            start_heading: Start heading in radians.
            room_index: Optional grid of room indices (-1 = no room); defaults to all -1.
            rooms: Optional room rectangles, kept for reference.

        Returns:
            The map. Object blocks are read from the grid's object material ids.

        Raises:
            ValueError: If the grid or the start position is invalid.
        """
        grid = np.asarray(cells)
        if grid.ndim != 2 or min(grid.shape) < 3:
            raise ValueError(f"cells must be a 2D grid of at least 3x3, got shape {grid.shape}")
        if not np.issubdtype(grid.dtype, np.integer):
            raise ValueError(f"cells must hold integer material ids, got dtype {grid.dtype}")
        if grid.min() < 0 or grid.max() > MAX_MATERIAL:
            raise ValueError(f"material ids must be in 0..{MAX_MATERIAL}")
        border = np.concatenate([grid[0], grid[-1], grid[:, 0], grid[:, -1]])
        if np.any(border == 0):
            raise ValueError("the border cells of the grid must all be solid (non-zero)")
        sx, sy = float(start[0]), float(start[1])
        cx, cy = math.floor(sx), math.floor(sy)
        if not (0 <= cy < grid.shape[0] and 0 <= cx < grid.shape[1]) or grid[cy, cx] != 0:
            raise ValueError(f"start {start} must lie inside a floor cell")
        if room_index is None:
            rooms_grid = np.full(grid.shape, -1, dtype=np.int16)
        else:
            rooms_grid = np.asarray(room_index, dtype=np.int16)
            if rooms_grid.shape != grid.shape:
                raise ValueError("room_index must have the same shape as cells")
        ys, xs = np.nonzero(grid >= OBJECT_MATERIAL_BASE)
        objects = tuple((int(x), int(y)) for x, y in zip(xs, ys, strict=True))
        cells16 = grid.astype(np.int16)
        return cls(
            cells=_readonly(cells16),
            room_index=_readonly(np.where(cells16 == 0, rooms_grid, np.int16(-1))),
            reachable=_readonly(_flood_fill(cells16 == 0, (cx, cy))),
            objects=objects,
            rooms=tuple(rooms),
            start=(sx, sy),
            start_heading=float(start_heading) % (2.0 * math.pi),
        )


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """Validate an integer argument and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    number = int(value)
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {number}")
    return number


def _place_rooms(rng: np.random.Generator, count: int, width: int, height: int) -> list[Room]:
    """Place up to ``count`` non-overlapping rooms with at least one wall cell between them."""
    max_w = min(7, width - 2)
    max_h = min(7, height - 2)
    min_w = min(3, max_w)
    min_h = min(3, max_h)
    rooms: list[Room] = []
    for _ in range(count * _PLACEMENT_TRIES_PER_ROOM):
        if len(rooms) == count:
            break
        rw = int(rng.integers(min_w, max_w + 1))
        rh = int(rng.integers(min_h, max_h + 1))
        # Floor stays inside the border: x in [1, width - 2 - rw + 1].
        x = int(rng.integers(1, width - rw))
        y = int(rng.integers(1, height - rh))
        # Reject overlap with another room grown by one cell, so a wall separates them.
        if all(
            x + rw < ox or ox + ow < x or y + rh < oy or oy + oh < y for ox, oy, ow, oh in rooms
        ):
            rooms.append((x, y, rw, rh))
    return rooms


def _centre(room: Room) -> tuple[int, int]:
    """Return the centre cell of a room."""
    x, y, w, h = room
    return x + w // 2, y + h // 2


def _carve_corridor(
    cells: npt.NDArray[np.int16],
    a: tuple[int, int],
    b: tuple[int, int],
    horizontal_first: bool,
) -> None:
    """Carve an L-shaped, one-cell-wide corridor between cells ``a`` and ``b``."""
    (ax, ay), (bx, by) = a, b
    corner = (bx, ay) if horizontal_first else (ax, by)
    for (x0, y0), (x1, y1) in ((a, corner), (corner, b)):
        cells[min(y0, y1) : max(y0, y1) + 1, min(x0, x1) : max(x0, x1) + 1] = 0


def _start_heading(cells: npt.NDArray[np.int16], cell: tuple[int, int]) -> float:
    """Face the axis direction with the longest run of open floor from ``cell``."""
    best_len, best_heading = -1, 0.0
    for dx, dy, heading in _DIRECTIONS:
        x, y = cell
        run = 0
        while cells[y + dy, x + dx] == 0:
            x, y, run = x + dx, y + dy, run + 1
        if run > best_len:
            best_len, best_heading = run, heading
    return best_heading


def generate_maze(seed: int, rooms: int = 6, width: int = 21, height: int = 21) -> MazeMap:
    """Generate a maze of rooms joined by corridors, deterministically from ``seed``.

    Rooms are 3 to 7 cells on a side (smaller on tiny maps) and each gets its own wall
    material; corridor walls use :data:`CORRIDOR_WALL`. Every room is joined to its nearest
    earlier room, and a few extra corridors make loops. Object blocks are then dropped inside
    rooms wherever they do not cut the floor apart, so every floor cell stays reachable.

    Args:
        seed: Non-negative seed of the numpy ``Generator``; the same seed gives the same map.
        rooms: Number of rooms to place (1 to 64). Fewer are placed when the map is too small
            to hold them all.
        width: Map width in cells, including the solid border (at least 7).
        height: Map height in cells, including the solid border (at least 7).

    Returns:
        The generated map; its start is the centre of the first room.

    Raises:
        ValueError: If an argument is not an integer or is out of range.
    """
    seed = _check_int("seed", seed, 0)
    count = _check_int("rooms", rooms, 1, _MAX_ROOMS)
    width = _check_int("width", width, _MIN_SIDE, 1024)
    height = _check_int("height", height, _MIN_SIDE, 1024)

    rng = np.random.default_rng(seed)
    cells = np.full((height, width), CORRIDOR_WALL, dtype=np.int16)
    room_index = np.full((height, width), -1, dtype=np.int16)
    placed = _place_rooms(rng, count, width, height)
    for i, (x, y, w, h) in enumerate(placed):
        cells[y : y + h, x : x + w] = 0
        room_index[y : y + h, x : x + w] = i

    centres = [_centre(room) for room in placed]
    for i in range(1, len(placed)):
        ax, ay = centres[i]
        nearest = min(range(i), key=lambda j: abs(centres[j][0] - ax) + abs(centres[j][1] - ay))
        _carve_corridor(cells, centres[i], centres[nearest], bool(rng.integers(2)))
    # Extra corridors create loops, so the world is not a tree of dead ends.
    for _ in range(len(placed) // 3):
        i, j = (int(v) for v in rng.choice(len(placed), size=2, replace=False))
        _carve_corridor(cells, centres[i], centres[j], bool(rng.integers(2)))

    # Each room gets its own wall material on the walls that ring it.
    room_materials = rng.permutation(NUM_WALL_MATERIALS - 1) + CORRIDOR_WALL + 1
    for i, (x, y, w, h) in enumerate(placed):
        ring = cells[y - 1 : y + h + 1, x - 1 : x + w + 1]
        ring[ring > 0] = room_materials[i % len(room_materials)]
    # Corridors may have cut through a room's ring: those cells are floor, not room floor.
    room_index[cells != 0] = -1

    start_cell = centres[0]
    objects: list[tuple[int, int]] = []
    floor_count = int(np.count_nonzero(cells == 0))
    for x, y, w, h in placed:
        if w * h < 9:
            continue
        for _ in range(int(rng.integers(0, 3))):
            ox = int(rng.integers(x, x + w))
            oy = int(rng.integers(y, y + h))
            if (ox, oy) == start_cell or cells[oy, ox] != 0:
                continue
            cells[oy, ox] = OBJECT_MATERIAL_BASE + int(rng.integers(NUM_OBJECT_MATERIALS))
            # Keep the block only if the remaining floor is still one connected region.
            if int(np.count_nonzero(_flood_fill(cells == 0, start_cell))) == floor_count - 1:
                objects.append((ox, oy))
                floor_count -= 1
            else:
                cells[oy, ox] = 0
    room_index[cells != 0] = -1

    reachable = _flood_fill(cells == 0, start_cell)
    if not np.array_equal(reachable, cells == 0):  # pragma: no cover - corridors join all rooms
        raise RuntimeError("maze generation left unreachable floor cells")
    return MazeMap(
        cells=_readonly(cells),
        room_index=_readonly(room_index),
        reachable=_readonly(reachable),
        objects=tuple(objects),
        rooms=tuple(placed),
        start=(start_cell[0] + 0.5, start_cell[1] + 0.5),
        start_heading=_start_heading(cells, start_cell),
    )
