"""First-person ray-casting renderer for maze maps, in numpy only.

The renderer casts one ray per screen column (a DDA walk through the grid, vectorised over
columns and over grid-line crossings), then fills every pixel with a single gather from a
colour lookup table built once per frame size. The table holds:

* wall texels for every (material, side, distance level, texture column, texture row), so
  per-material colours, procedural textures (bricks, stripes, checkers, panels, crates),
  distance shading and the darker shade of y-sides all cost nothing per frame;
* floor colours for every (screen row, tile key), where the key is the room tint plus the
  checker parity of the floor cell the pixel sees, shaded by that row's distance;
* ceiling colours for every (screen row, ceiling key): plain tiles or light panels.

World coordinates: ``x`` grows along grid columns, ``y`` along grid rows; heading 0 faces
+x and a positive heading change turns right (towards +y). The camera sits half a cell above
the floor and walls are one cell tall.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from pamiqx.envs.maze.layout import (
    CORRIDOR_WALL,
    MAX_MATERIAL,
    OBJECT_MATERIAL_BASE,
    MazeMap,
)

__all__ = ["Renderer"]

_TEX = 16
"""Texture resolution (texels per wall face, along each axis)."""
_N_MATERIALS = MAX_MATERIAL + 1
_N_DIST = 48
"""Distance levels for shading, each ``1 / _DIST_SCALE`` cells deep."""
_DIST_SCALE = 2.0
_N_SHADE = 2 * _N_DIST
"""Shade index = side * _N_DIST + distance level (side 1 = y-side, drawn darker)."""
_Y_SIDE_FACTOR = 0.7
_FLOOR_TINTS = 9
"""Tint 0 is corridor floor; tints 1..8 cycle over rooms."""
_FLOOR_KEYS = 2 * _FLOOR_TINTS
_CEIL_KEYS = 2
_MIN_DEPTH = 1e-4

# Base and accent colours of each material (index = material id).
_WALL_COLOURS: dict[int, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    CORRIDOR_WALL: ((128, 128, 124), (78, 76, 72)),  # grey stone bricks
    2: ((178, 58, 44), (226, 208, 190)),  # red bricks, pale mortar
    3: ((46, 86, 196), (140, 186, 250)),  # blue vertical stripes
    4: ((46, 150, 62), (18, 70, 28)),  # green checker
    5: ((222, 190, 40), (104, 76, 12)),  # yellow horizontal stripes
    6: ((132, 60, 170), (216, 170, 240)),  # purple panels
    7: ((232, 120, 30), (120, 52, 10)),  # orange diagonal stripes
    8: ((30, 160, 160), (210, 240, 236)),  # teal tiles
    OBJECT_MATERIAL_BASE: ((236, 40, 170), (110, 8, 70)),  # magenta crate
    OBJECT_MATERIAL_BASE + 1: ((40, 230, 236), (6, 90, 110)),  # cyan crate
    OBJECT_MATERIAL_BASE + 2: ((170, 240, 40), (60, 110, 6)),  # lime crate
    OBJECT_MATERIAL_BASE + 3: ((250, 250, 250), (200, 150, 30)),  # white and gold crate
}
_FALLBACK_COLOURS = ((100, 100, 100), (60, 60, 60))

_FLOOR_COLOURS = np.array(
    [
        (96, 92, 86),  # corridor
        (150, 110, 80),
        (84, 110, 150),
        (100, 140, 90),
        (150, 140, 96),
        (126, 96, 140),
        (150, 100, 100),
        (90, 140, 140),
        (136, 136, 136),
    ],
    dtype=np.float64,
)
_CEILING_COLOUR = np.array((70, 74, 90), dtype=np.float64)
_LIGHT_COLOUR = np.array((255, 244, 200), dtype=np.float64)


def _pattern(material: int) -> npt.NDArray[np.bool_]:
    """Return the ``[v, u]`` accent mask of a material's procedural texture.

    Args:
        material: Material id.

    Returns:
        Boolean ``(_TEX, _TEX)`` array; True texels take the material's accent colour.
    """
    grid: npt.NDArray[np.intp] = np.mgrid[0:_TEX, 0:_TEX]
    v, u = grid[0], grid[1]
    if material >= OBJECT_MATERIAL_BASE:
        # Crates: a frame with a diagonal brace; each object material flips the brace.
        frame = (u < 2) | (u >= _TEX - 2) | (v < 2) | (v >= _TEX - 2)
        diagonal = (
            (u == v) | (u == v + 1) if material % 2 else (u + v == _TEX - 1) | (u + v == _TEX)
        )
        return np.asarray(frame | diagonal, dtype=np.bool_)
    patterns: dict[int, npt.NDArray[np.bool_]] = {
        # Large stone bricks: 4 courses, staggered joints.
        CORRIDOR_WALL: (v % 4 == 0) | ((u + 4 * ((v // 4) % 2)) % 8 == 0),
        # Small bricks: joints every 4 texels, staggered by 4.
        2: (v % 4 == 3) | ((u + 4 * ((v // 4) % 2)) % 8 == 7),
        3: (u // 4) % 2 == 1,
        4: ((u // 4) + (v // 4)) % 2 == 1,
        5: (v // 4) % 2 == 1,
        6: (u % 8 == 0) | (v % 8 == 0) | (u % 8 == 7) | (v % 8 == 7),
        7: ((u + v) // 4) % 2 == 1,
        8: (u % 8 == 0) | (v % 8 == 0),
    }
    return np.asarray(patterns.get(material, (u + v) % 2 == 0), dtype=np.bool_)


def _shade(distance: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Brightness factor at a distance in cells: near 1 close up, towards 0.25 far away."""
    return 0.25 + 0.75 * np.exp(-distance / 8.0)


def _wall_table() -> npt.NDArray[np.uint8]:
    """Build wall texels indexed ``[material, shade, u, v]`` as a flat ``(N, 3)`` table."""
    # Fixed-seed grain so walls are not flat blocks of colour (deterministic across runs).
    grain = np.random.default_rng(1234).uniform(-12.0, 12.0, size=(_TEX, _TEX, 1))
    texels = np.empty((_N_MATERIALS, _TEX, _TEX, 3), dtype=np.float64)  # [m, v, u, rgb]
    for material in range(_N_MATERIALS):
        base, accent = _WALL_COLOURS.get(material, _FALLBACK_COLOURS)
        mask = _pattern(material)[:, :, None]
        texels[material] = np.where(mask, np.array(accent), np.array(base)) + grain
    levels = np.asarray((np.arange(_N_DIST) + 0.5) / _DIST_SCALE, dtype=np.float64)
    factors = np.concatenate([_shade(levels), _shade(levels) * _Y_SIDE_FACTOR])  # [shade]
    # [m, shade, u, v, rgb]: v is the fastest texture axis so a pixel index is base + v.
    table = texels.transpose(0, 2, 1, 3)[:, None] * factors[None, :, None, None, None]
    return _to_rgb(table)


def _to_rgb(colours: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Round float colours to uint8 and flatten them to an ``(N, 3)`` table."""
    return np.asarray(np.clip(np.rint(colours), 0, 255), dtype=np.uint8).reshape(-1, 3)


class Renderer:
    """Ray-casting renderer for one frame size and field of view.

    Construction precomputes everything that depends only on the frame size: ray directions
    in camera space, the distance of every floor and ceiling row, and the colour lookup table.
    Per-map arrays are prepared on the first :meth:`render` call for a map and cached.

    Args:
        height: Frame height in pixels (>= 1).
        width: Frame width in pixels (>= 1).
        fov_deg: Horizontal field of view in degrees, in ``(0, 180)``.

    Raises:
        ValueError: If an argument is out of range.
    """

    def __init__(self, height: int, width: int, fov_deg: float = 66.0) -> None:
        if isinstance(height, bool) or not isinstance(height, int) or height < 1:
            raise ValueError(f"height must be a positive integer, got {height!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
        if not 0.0 < float(fov_deg) < 180.0:
            raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg!r}")
        self.height = height
        self.width = width
        self.fov_deg = float(fov_deg)
        self._plane = math.tan(math.radians(self.fov_deg) / 2.0)
        # Focal length in pixels: a wall one cell tall at depth d spans focal / d rows.
        self._focal = (width / 2.0) / self._plane
        # Camera-space x of each column's centre, -1 (left edge) .. +1 (right edge).
        self._camera_x = (2.0 * (np.arange(width) + 0.5) / width - 1.0).astype(np.float64)

        half = height // 2
        # Row offsets from the horizon, at pixel centres; float32 keeps the per-pixel ops cheap.
        self._row_offset = (np.arange(height) + 0.5 - height / 2.0).astype(np.float32)
        # Floor rows are rows half.. (the middle row of an odd height is always wall).
        bottom_offset = np.maximum(np.arange(half, height) + 0.5 - height / 2.0, 0.5)
        self._floor_dist = (0.5 * self._focal / bottom_offset).astype(np.float64)
        # Ceiling row y mirrors floor row height - 1 - y: same depth.
        self._ceil_rows = slice(height % 2, None)  # floor rows that ceiling rows mirror

        wall = _wall_table()
        floor_shade = _shade(self._floor_dist)[:, None, None]  # [row, key, rgb]
        tile = np.repeat(_FLOOR_COLOURS, 2, axis=0) * np.tile([1.0, 0.8], _FLOOR_TINTS)[:, None]
        floor = floor_shade * tile[None]
        ceil_dist = self._floor_dist[self._ceil_rows][::-1]
        ceiling = np.stack(
            [
                _shade(ceil_dist)[:, None] * _CEILING_COLOUR[None],
                np.broadcast_to(_LIGHT_COLOUR, (half, 3)),  # lights glow: not shaded
            ],
            axis=1,
        )
        self._floor_base = np.intp(len(wall))
        self._ceil_base = np.intp(len(wall) + floor.shape[0] * _FLOOR_KEYS)
        self._floor_row_base = (
            self._floor_base + np.arange(len(self._floor_dist), dtype=np.intp) * _FLOOR_KEYS
        )[:, None]
        self._ceil_row_base = (self._ceil_base + np.arange(half, dtype=np.intp) * _CEIL_KEYS)[
            :, None
        ]
        self._lut = np.concatenate(
            [
                wall,
                _to_rgb(floor),
                _to_rgb(ceiling),
            ]
        )
        self._map: MazeMap | None = None
        self._solid = np.zeros(0, dtype=np.intp)
        self._floor_key = np.zeros(0, dtype=np.intp)
        self._ceil_key = np.zeros(0, dtype=np.intp)
        self._crossings = np.zeros(0, dtype=np.float64)

    def _prepare(self, maze: MazeMap) -> None:
        """Cache the flat per-cell arrays of ``maze`` used by the ray and floor casts."""
        ys, xs = np.mgrid[0 : maze.height, 0 : maze.width]
        tint = np.where(maze.room_index >= 0, maze.room_index % (_FLOOR_TINTS - 1) + 1, 0)
        self._solid = maze.cells.astype(np.intp).ravel()
        self._floor_key = (2 * tint + (xs + ys) % 2).astype(np.intp).ravel()
        self._ceil_key = ((xs % 3 == 1) & (ys % 3 == 1)).astype(np.intp).ravel()
        # A ray from inside the map crosses at most max(w, h) - 1 grid lines per axis
        # before it enters a border cell, and the border is solid.
        self._crossings = np.arange(max(maze.width, maze.height) - 1, dtype=np.float64)
        self._map = maze

    def _cast(
        self,
        maze: MazeMap,
        pos: float,
        other: float,
        ray: npt.NDArray[np.float64],
        ray_other: npt.NDArray[np.float64],
        along_x: bool,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
        """Find, per column, the first solid cell entered across one axis' grid lines.

        Args:
            maze: The map.
            pos: Camera coordinate along the axis whose grid lines are crossed.
            other: Camera coordinate along the other axis.
            ray: Ray direction components along the crossed axis, per column.
            ray_other: Ray direction components along the other axis, per column.
            along_x: True to cross vertical grid lines (x = const), False for horizontal.

        Returns:
            Ray parameter (perpendicular depth) of the hit, ``inf`` where none, and the
            material id hit, per column.
        """
        cell = math.floor(pos)
        negative = ray < 0.0
        # Exact zeros would give inf * 0 = nan below; a tiny component only pushes hits away.
        safe = np.where(ray == 0.0, 1e-12, ray)
        delta = np.abs(1.0 / safe)
        first = np.where(negative, pos - cell, cell + 1.0 - pos) * delta
        t = first[:, None] + self._crossings[None, :] * delta[:, None]  # [column, crossing]
        step = np.where(negative, -1, 1)
        crossed = cell + step[:, None] * (self._crossings.astype(np.intp) + 1)[None, :]
        limit = (maze.height if along_x else maze.width) - 1
        across = np.clip(other + t * ray_other[:, None], 0.0, limit).astype(np.intp)
        index = across * maze.width + crossed if along_x else crossed * maze.width + across
        material = self._solid.take(index, mode="clip")
        hit = material > 0
        k = hit.argmax(axis=1)
        columns = np.arange(len(ray))
        found = hit[columns, k]
        return np.where(found, t[columns, k], np.inf), material[columns, k]

    def render(self, maze: MazeMap, x: float, y: float, heading: float) -> npt.NDArray[np.uint8]:
        """Render the view from ``(x, y)`` facing ``heading``.

        Args:
            maze: The map to draw; per-map arrays are cached between calls.
            x: Camera x in world coordinates; must lie in a floor cell.
            y: Camera y in world coordinates; must lie in a floor cell.
            heading: Viewing direction in radians (0 faces +x, increasing turns right).

        Returns:
            A new ``(height, width, 3)`` uint8 RGB frame.
        """
        if maze is not self._map:
            self._prepare(maze)
        dir_x, dir_y = math.cos(heading), math.sin(heading)
        # The camera plane points to the viewer's right: a quarter turn right of the heading.
        ray_x = dir_x - dir_y * self._plane * self._camera_x
        ray_y = dir_y + dir_x * self._plane * self._camera_x

        t_x, mat_x = self._cast(maze, x, y, ray_x, ray_y, along_x=True)
        t_y, mat_y = self._cast(maze, y, x, ray_y, ray_x, along_x=False)
        y_side = t_y < t_x
        depth = np.maximum(np.where(y_side, t_y, t_x), _MIN_DEPTH)
        material = np.where(y_side, mat_y, mat_x)
        # Texture u: where along the face the ray hit, flipped so textures are not mirrored.
        hit_coord = np.where(y_side, x + depth * ray_x, y + depth * ray_y)
        u = hit_coord - np.floor(hit_coord)
        u = np.where(np.where(y_side, ray_y < 0.0, ray_x > 0.0), 1.0 - u, u)
        tex_u = np.minimum((u * _TEX).astype(np.intp), _TEX - 1)
        level = np.minimum((depth * _DIST_SCALE).astype(np.intp), _N_DIST - 1)
        shade = y_side * _N_DIST + level
        column_base = ((material * _N_SHADE + shade) * _TEX + tex_u) * _TEX

        height, half = self.height, self.height // 2
        index = np.empty((height, self.width), dtype=np.intp)
        # Floor and ceiling: the grid cell each pixel sees, then its tile key.
        floor_x = np.multiply.outer(self._floor_dist, ray_x)
        floor_x += x
        floor_y = np.multiply.outer(self._floor_dist, ray_y)
        floor_y += y
        cells = floor_y.astype(np.intp)
        cells *= maze.width
        cells += floor_x.astype(np.intp)
        # Pixels hidden behind walls may look outside the map: clip, they are overwritten.
        bottom = index[half:]
        self._floor_key.take(cells, out=bottom, mode="clip")
        bottom += self._floor_row_base
        top = index[:half]
        self._ceil_key.take(cells[self._ceil_rows][::-1], out=top, mode="clip")
        top += self._ceil_row_base

        # Walls: texture row of every pixel; rows outside [0, _TEX) are floor or ceiling.
        tex_v = np.multiply.outer(
            self._row_offset, (depth * (_TEX / self._focal)).astype(np.float32)
        )
        tex_v += _TEX / 2.0
        wall = tex_v >= 0.0
        wall &= tex_v < _TEX
        wall_index = tex_v.astype(np.intp)
        wall_index += column_base
        np.copyto(index, wall_index, where=wall)
        return self._lut.take(index, axis=0)
