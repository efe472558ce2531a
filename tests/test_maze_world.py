"""Tests of the maze world: map generation, rendering, locomotion, coverage, checkpoints."""

import math

import numpy as np
import pytest

from pamiqx.envs.maze import (
    DISCRETE_ACTIONS,
    MULTI_DISCRETE_NVEC,
    MazeMap,
    MazeWorld,
    generate_maze,
)
from pamiqx.envs.maze.layout import MAX_MATERIAL, NUM_WALL_MATERIALS, OBJECT_MATERIAL_BASE
from pamiqx.envs.maze.render import Renderer
from pamiqx.envs.maze.world import AGENT_RADIUS

FORWARD = DISCRETE_ACTIONS.index("forward")
TURN_RIGHT = DISCRETE_ACTIONS.index("turn_right")
STRAFE_RIGHT = DISCRETE_ACTIONS.index("strafe_right")


def box_cells(cells: np.ndarray, x: float, y: float) -> np.ndarray:
    """Cells overlapped by the agent's collision box centred at (x, y)."""
    r = AGENT_RADIUS
    return cells[
        math.floor(y - r) : math.floor(y + r) + 1, math.floor(x - r) : math.floor(x + r) + 1
    ]


def random_walk(world: MazeWorld, steps: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [world.step(int(a)) for a in rng.integers(0, len(DISCRETE_ACTIONS), size=steps)]


# -- layout ------------------------------------------------------------------------------


def test_same_seed_same_map() -> None:
    a, b = generate_maze(7), generate_maze(7)
    assert np.array_equal(a.cells, b.cells)
    assert np.array_equal(a.room_index, b.room_index)
    assert a.start == b.start
    assert a.start_heading == b.start_heading
    assert a.objects == b.objects


def test_different_seeds_different_maps() -> None:
    maps = [generate_maze(seed).cells.tobytes() for seed in range(10)]
    assert len(set(maps)) == 10


@pytest.mark.parametrize(
    ("seed", "rooms", "size"), [(0, 6, 21), (1, 3, 15), (5, 12, 31), (9, 1, 7)]
)
def test_layout_invariants(seed: int, rooms: int, size: int) -> None:
    maze = generate_maze(seed, rooms=rooms, width=size, height=size + 2)
    cells = maze.cells
    assert cells.shape == (size + 2, size)
    border = np.concatenate([cells[0], cells[-1], cells[:, 0], cells[:, -1]])
    assert np.all(border > 0)
    # Every floor cell is reachable from the start, and the start is floor.
    assert np.array_equal(maze.reachable, cells == 0)
    assert maze.num_reachable == int(np.count_nonzero(cells == 0)) > 0
    sx, sy = maze.start
    assert cells[int(sy), int(sx)] == 0
    assert cells.min() >= 0 and cells.max() <= MAX_MATERIAL
    for x, y in maze.objects:
        assert cells[y, x] >= OBJECT_MATERIAL_BASE
    assert not cells.flags.writeable


def test_layout_has_several_wall_materials_and_objects() -> None:
    maze = generate_maze(0)
    walls = set(np.unique(maze.cells).tolist()) - {0}
    wall_materials = {m for m in walls if m <= NUM_WALL_MATERIALS}
    assert len(wall_materials) >= 4
    assert len(maze.rooms) == 6
    # Objects appear in some seeds' maps; across a few seeds they must show up.
    assert any(generate_maze(seed).objects for seed in range(5))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 6},
        {"height": 3},
        {"rooms": 0},
        {"seed": -1},
        {"width": 10.5},
        {"rooms": True},
    ],
)
def test_generate_maze_rejects_bad_args(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"seed": 0, **kwargs}
    with pytest.raises(ValueError):
        generate_maze(**args)  # type: ignore[arg-type]


def test_from_cells_rejects_open_border_and_bad_start() -> None:
    cells = np.ones((7, 7), dtype=np.int16)
    cells[1:-1, 1:-1] = 0
    MazeMap.from_cells(cells, (3.5, 3.5))
    open_border = cells.copy()
    open_border[0, 3] = 0
    with pytest.raises(ValueError, match="border"):
        MazeMap.from_cells(open_border, (3.5, 3.5))
    with pytest.raises(ValueError, match="start"):
        MazeMap.from_cells(cells, (0.5, 0.5))


# -- rendering ---------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(64, 64), (96, 128), (33, 17)])
def test_frame_dtype_and_shape(height: int, width: int) -> None:
    world = MazeWorld(seed=3, height=height, width=width)
    for frame in (world.reset(), world.observe(), world.step(FORWARD)):
        assert frame.dtype == np.uint8
        assert frame.shape == (height, width, 3)
    assert world.frame_shape == (height, width, 3)


def test_same_seed_same_frames() -> None:
    a, b = MazeWorld(seed=11), MazeWorld(seed=11)
    for fa, fb in zip(random_walk(a, 200, seed=0), random_walk(b, 200, seed=0), strict=True):
        assert np.array_equal(fa, fb)
    assert a.position == b.position
    assert a.heading == b.heading


def test_different_seeds_different_first_frames() -> None:
    frames = [MazeWorld(seed=seed).observe().tobytes() for seed in range(5)]
    assert len(set(frames)) == 5


def test_turning_and_moving_change_the_frame() -> None:
    world = MazeWorld(seed=0)
    start = world.observe()
    turned = world.step(TURN_RIGHT)
    assert not np.array_equal(start, turned)
    assert world.heading == pytest.approx(world.maze.start_heading + math.radians(15.0))
    moved = world.step(FORWARD)
    assert not np.array_equal(turned, moved)
    # Turning a full circle comes back to the same view (up to float rounding of the heading).
    world = MazeWorld(seed=0)
    for _ in range(24):
        frame = world.step(TURN_RIGHT)
    # The start pose sits exactly on shading and cell boundaries, so rounding flips a few
    # pixels to a neighbouring shade or tile; the picture as a whole is the same.
    assert np.abs(frame.astype(np.int16) - start).mean() < 3.0
    assert np.abs(turned.astype(np.int16) - start).mean() > 10.0


def test_observe_returns_last_frame_and_a_copy() -> None:
    world = MazeWorld(seed=2)
    frame = world.step(FORWARD)
    frame[:] = 0
    assert np.array_equal(world.observe(), MazeWorld(seed=2).step(FORWARD))
    assert np.any(world.observe() != 0)


def test_wall_materials_render_different_colours() -> None:
    # A 7x7 room: west wall material 2, east wall material 3, other walls corridor (1).
    cells = np.ones((7, 7), dtype=np.int16)
    cells[1:-1, 1:-1] = 0
    cells[:, 0] = 2
    cells[:, -1] = 3
    maze = MazeMap.from_cells(cells, (3.5, 3.5))
    renderer = Renderer(32, 32)
    east = renderer.render(maze, 3.5, 3.5, 0.0)  # facing +x: the material-3 wall, 2.5 away
    west = renderer.render(maze, 3.5, 3.5, math.pi)  # facing -x: the material-2 wall, 2.5 away
    # Same distance and side: only the material differs, so the wall band differs in colour.
    band = slice(14, 18)
    east_mean = east[band].reshape(-1, 3).mean(axis=0)
    west_mean = west[band].reshape(-1, 3).mean(axis=0)
    assert np.abs(east_mean - west_mean).max() > 40
    # The checker floor is mirror-symmetric about the camera, so it looks the same both ways.
    # (up to pixels that sit exactly on tile edges, where the rounding of cos(pi) decides).
    assert np.abs(east[-6:].astype(np.int16) - west[-6:]).mean() < 3.0


def test_generated_world_shows_many_colours() -> None:
    world = MazeWorld(seed=0)
    frames = [world.step(TURN_RIGHT) for _ in range(24)]
    colours = np.unique(np.concatenate(frames).reshape(-1, 3), axis=0)
    assert len(colours) > 200
    # Textures: a single wall face is not one flat colour.
    assert len(np.unique(frames[0][28:36].reshape(-1, 3), axis=0)) > 10


def test_renderer_rejects_bad_args() -> None:
    with pytest.raises(ValueError):
        Renderer(0, 64)
    with pytest.raises(ValueError):
        Renderer(64, 64, fov_deg=180.0)


# -- locomotion and coverage ---------------------------------------------------------------


def test_random_walk_never_enters_walls() -> None:
    world = MazeWorld(seed=4, height=16, width=16, move_speed=0.3)
    cells = world.maze.cells
    rng = np.random.default_rng(1)
    # Bias towards moving so the agent spends most of the walk pressed against walls.
    actions = rng.choice([1, 1, 1, 2, 3, 4, 5, 6], size=2000)
    positions = set()
    for action in actions:
        world.step(int(action))
        x, y = world.position
        assert cells[int(y), int(x)] == 0
        assert not np.any(box_cells(cells, x, y))
        positions.add((round(x, 3), round(y, 3)))
    assert len(positions) > 200  # the walk really moved


def test_agent_slides_along_walls() -> None:
    world = MazeWorld(seed=0)
    room_x, room_y, room_w, _ = world.maze.rooms[0]
    # Precondition: the start room's north wall is solid along the whole room.
    assert np.all(world.maze.cells[room_y - 1, room_x : room_x + room_w] > 0)
    # Walk 30 degrees east of north: hit the north wall, then slide east along it.
    world.set_state({**world.get_state(), "heading": 5.0 * math.pi / 3.0})
    for _ in range(30):
        world.step(FORWARD)
    x_before, y_before = world.position
    assert y_before == pytest.approx(room_y + AGENT_RADIUS, abs=1e-5)  # flush with the wall
    for _ in range(5):
        world.step(FORWARD)
    x, y = world.position
    assert y == y_before
    assert x - x_before == pytest.approx(5 * 0.15 * math.cos(5.0 * math.pi / 3.0))


def test_coverage_starts_at_one_cell_and_grows() -> None:
    world = MazeWorld(seed=6)
    assert world.visited_cells == 1
    assert world.coverage == pytest.approx(1.0 / world.reachable_cells)
    assert world.reachable_cells == world.maze.num_reachable
    previous = world.coverage
    rng = np.random.default_rng(2)
    for action in rng.choice([1, 1, 1, 5, 6], size=3000):
        world.step(int(action))
        assert previous <= world.coverage <= 1.0
        previous = world.coverage
    assert world.visited_cells > 10
    world.reset()
    assert world.visited_cells == 1
    assert world.position == world.maze.start


def test_multi_discrete_run_moves_farther_than_walking() -> None:
    def distance(action: list[int]) -> float:
        world = MazeWorld(seed=0, action_mode="multi_discrete")
        x0, y0 = world.position
        for _ in range(3):
            world.step(action)
        x, y = world.position
        return math.hypot(x - x0, y - y0)

    walk = distance([1, 0, 0, 0, 0])
    run = distance([1, 0, 0, 0, 1])
    assert walk == pytest.approx(3 * 0.15)
    assert run == pytest.approx(3 * 0.30)


def test_multi_discrete_matches_discrete_semantics() -> None:
    pairs = [
        ([1, 0, 0, 0, 0], "forward"),
        ([2, 0, 0, 0, 0], "backward"),
        ([0, 1, 0, 0, 0], "strafe_right"),
        ([0, 2, 0, 0, 0], "strafe_left"),
        ([0, 0, 1, 0, 0], "turn_right"),
        ([0, 0, 2, 0, 0], "turn_left"),
        ([0, 0, 0, 1, 0], "noop"),  # Jump is ignored
    ]
    for multi, name in pairs:
        md = MazeWorld(seed=1, action_mode="multi_discrete")
        d = MazeWorld(seed=1)
        assert np.array_equal(md.step(np.array(multi)), d.step(DISCRETE_ACTIONS.index(name)))
        assert md.position == d.position and md.heading == d.heading, name


def test_strafe_right_is_to_the_right_of_heading() -> None:
    world = MazeWorld(seed=0)
    x0, y0 = world.position
    h = world.heading
    world.step(STRAFE_RIGHT)
    x, y = world.position
    # Right of heading h is h + 90 degrees (turning right increases the heading).
    assert (x - x0) * -math.sin(h) + (y - y0) * math.cos(h) == pytest.approx(0.15)


@pytest.mark.parametrize("action", [7, -1, 1.0, "forward", True, None, [1], np.array([1, 2])])
def test_invalid_discrete_action_raises(action: object) -> None:
    world = MazeWorld(seed=0)
    with pytest.raises(ValueError):
        world.step(action)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "action",
    [
        [0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [3, 0, 0, 0, 0],
        [0, 0, 0, 2, 0],
        [0, 0, 0, 0, -1],
        [0.0, 0, 0, 0, 0],
        np.zeros(5, dtype=np.float32),
        np.zeros((1, 5), dtype=np.int64),
        1,
        "fwd01",
    ],
)
def test_invalid_multi_discrete_action_raises(action: object) -> None:
    world = MazeWorld(seed=0, action_mode="multi_discrete")
    with pytest.raises(ValueError):
        world.step(action)  # type: ignore[arg-type]


def test_valid_actions_of_other_types_are_accepted() -> None:
    MazeWorld(seed=0).step(np.int64(1))
    world = MazeWorld(seed=0, action_mode="multi_discrete")
    world.step((1, 2, 1, 1, 1))
    world.step(np.array([0, 1, 2, 0, 1], dtype=np.uint8))
    assert len(MULTI_DISCRETE_NVEC) == 5


@pytest.mark.parametrize(
    "kwargs",
    [{"action_mode": "continuous"}, {"move_speed": 0.0}, {"move_speed": 1.0}, {"height": 0}],
)
def test_world_rejects_bad_args(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MazeWorld(seed=0, **kwargs)  # type: ignore[arg-type]


# -- checkpoints ---------------------------------------------------------------------------


def test_state_round_trip_reproduces_frames() -> None:
    world = MazeWorld(seed=8)
    random_walk(world, 300, seed=3)
    state = world.get_state()
    frame_at_state = world.observe()
    coverage = world.coverage
    expected = random_walk(world, 100, seed=4)
    end_position = world.position

    # Restore into the same world, and into a fresh one built from the same seed.
    for target in (world, MazeWorld(seed=8)):
        target.set_state(state)
        assert target.coverage == coverage
        assert np.array_equal(target.observe(), frame_at_state)
        frames = random_walk(target, 100, seed=4)
        assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))
        assert target.position == end_position


def test_get_state_is_a_snapshot() -> None:
    world = MazeWorld(seed=8)
    state = world.get_state()
    random_walk(world, 200, seed=5)
    visited = state["visited"]
    assert isinstance(visited, np.ndarray)
    assert int(visited.sum()) == 1
    assert world.visited_cells > 1


def test_set_state_rejects_bad_states() -> None:
    world = MazeWorld(seed=8)
    state = world.get_state()
    with pytest.raises(ValueError):
        world.set_state({**state, "x": 0.5, "y": 0.5})  # inside the border wall
    with pytest.raises(ValueError):
        world.set_state({**state, "visited": np.zeros((3, 3), dtype=bool)})
    with pytest.raises(ValueError):
        world.set_state({"x": 1.0})
    with pytest.raises(ValueError):
        MazeWorld(seed=9).set_state(state)
