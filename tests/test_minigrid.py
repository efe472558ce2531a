"""MiniGrid through the ``gymnasium`` plugin: image observations and run-long coverage."""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
import tomllib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from pamiqx.api import BuildContext
from pamiqx.api.errors import PluginError
from pamiqx.checkpoint import to_numpy, to_safe
from pamiqx.envs.gymnasium_env import GymnasiumEnvironment, GymnasiumOptions, GymnasiumPlugin
from pamiqx.sweep import expand, load_sweep_file

pytest.importorskip("minigrid")

CLI = Callable[..., tuple[int, str]]
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
FIXED = "pamiqx.envs.gym_wrappers:FixedSeed"
COVERAGE = "pamiqx.envs.minigrid_coverage:MiniGridCoverage"
RGB = ("minigrid.wrappers:RGBImgPartialObsWrapper", "minigrid.wrappers:ImgObsWrapper")
LEFT, RIGHT, FORWARD = 0, 1, 2


def build(id: str, *wrappers: str, seed: int = 0, **kwargs: object) -> GymnasiumEnvironment:
    options = GymnasiumOptions(
        id=f"MiniGrid-{id}", import_modules=("minigrid",), kwargs=dict(kwargs), wrappers=wrappers
    )
    env = GymnasiumPlugin().build(options, BuildContext("t", seed=seed))
    env.setup()
    return env


def coverage_after(env: GymnasiumEnvironment, actions: list[int]) -> list[float]:
    """Coverage after each action."""
    values = []
    for action in actions:
        env.affect(np.int64(action))
        env.observe()
        values.append(env.evaluation_metrics()["coverage"])
    return values


def test_tiny_grid_coverage_matches_a_hand_count() -> None:
    # Empty 5x5: 3x3 floor cells, the agent at (1, 1) facing +x, the goal at (3, 3).
    env = build("Empty-5x5-v0", FIXED, COVERAGE, "minigrid.wrappers:ImgObsWrapper")
    assert env.observation_spec.shape == (7, 7, 3) and env.observation_spec.kind == "image"
    assert env.evaluation_metrics() == {"coverage": 1 / 9}  # the start cell
    # (2,1) (3,1) wall (turn) (3,2) goal: the episode ends and FixedSeed restarts the
    # same room at (1,1) facing +x; the visited cells stay: (2,1) again, (turn), (2,2).
    steps = [FORWARD, FORWARD, FORWARD, RIGHT, FORWARD, FORWARD, FORWARD, RIGHT, FORWARD]
    ninths, starts = [], []
    for action in steps:
        env.affect(np.int64(action))
        starts.append(env.observe().episode_start)
        ninths.append(Fraction(env.evaluation_metrics()["coverage"]).limit_denominator(9) * 9)
    assert ninths == [2, 3, 3, 3, 4, 5, 5, 5, 6]
    assert starts == [False] * 5 + [True] + [False] * 3


def test_four_rooms_coverage_starts_low_and_grows_with_movement() -> None:
    env = build("FourRooms-v0", FIXED, COVERAGE, *RGB)
    observation = env.observe().observation
    assert observation.shape == (56, 56, 3) and observation.dtype == np.uint8
    assert env.action_spec.kind == "discrete" and env.action_spec.nvec == (7,)
    # 17x17 inside the outer wall, less the two inner walls (33 cells), plus 4 gaps.
    assert env.evaluation_metrics() == {"coverage": pytest.approx(1 / 260)}
    rng = np.random.default_rng(0)
    history = coverage_after(env, [int(a) for a in rng.choice([LEFT, RIGHT, FORWARD], 600)])
    assert all(a <= b for a, b in itertools.pairwise(history))  # never forgets
    assert 0.05 < history[-1] < 1  # six random 100-step episodes from one start


def test_a_new_layout_at_reset_is_an_error_naming_fixed_seed() -> None:
    env = build("FourRooms-v0", COVERAGE, *RGB, max_steps=3)
    with pytest.raises(PluginError, match="FixedSeed"):
        for _ in range(3):
            env.affect(np.int64(LEFT))


def test_coverage_needs_a_minigrid_world() -> None:
    options = GymnasiumOptions(id="CartPole-v1", wrappers=(COVERAGE,))
    with pytest.raises(PluginError, match="MiniGrid environment"):
        GymnasiumPlugin().build(options, BuildContext("t", seed=0))


def test_unregistered_id_hints_at_import_modules() -> None:
    options = GymnasiumOptions(id="NoSuchPackage-World-v0")
    with pytest.raises(PluginError, match="import_modules"):
        GymnasiumPlugin().build(options, BuildContext("t", seed=0))


def test_visited_cells_survive_a_safe_checkpoint() -> None:
    env = build("FourRooms-v0", FIXED, COVERAGE, *RGB, seed=3)
    coverage_after(env, [FORWARD, FORWARD, RIGHT, FORWARD, FORWARD, FORWARD])
    buffer = io.BytesIO()
    torch.save(to_safe(env.state_dict()), buffer)
    buffer.seek(0)
    state = to_numpy(torch.load(buffer, weights_only=True))
    other = build("FourRooms-v0", FIXED, COVERAGE, *RGB, seed=3)  # resume: setup, then load
    other.load_state_dict(state)
    assert other.evaluation_metrics() == env.evaluation_metrics()
    different = build("FourRooms-v0", FIXED, COVERAGE, *RGB, seed=4)
    with pytest.raises(PluginError, match="layout differs"):
        different.load_state_dict(state)


def test_importing_pamiqx_does_not_import_minigrid() -> None:
    code = (
        "import sys, pamiqx, pamiqx.envs.gymnasium_env, pamiqx.envs.gym_wrappers, "
        "pamiqx.sweep\n"
        "from pamiqx.plugins.manager import load_plugins\n"
        "load_plugins()\n"
        "assert 'minigrid' not in sys.modules, 'minigrid imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _comparison_run(curiosity: str) -> tuple[str, ...]:
    """The ``pamiqx run`` arguments of one seed-0 trial of the MiniGrid comparison sweep."""
    sweep = load_sweep_file(EXPERIMENTS / "sweeps" / "compare-minigrid.toml")
    run = next(
        r for r in expand(sweep, Path("/tmp/st")) if r.variant == curiosity and r.axes["seed"] == 0
    )
    kept = [o for o in run.overrides if not o.startswith("run.log_dir=")]
    return (str(run.experiment), *kept)


@pytest.mark.parametrize("curiosity", ["none", "rnd"])
def test_minigrid_comparison_runs_validate(cli: CLI, curiosity: str) -> None:
    code, out = cli("validate", *_comparison_run(curiosity))
    assert code == 0, out
    data = tomllib.loads(out)
    assert data["environment"]["id"] == "MiniGrid-FourRooms-v0"
    assert data["environment"]["import_modules"] == ["minigrid"]
    assert data["curiosity"]["plugin"] == curiosity
    assert data["policy"]["ext_coef"] == 0.0


def test_a_short_minigrid_run_reports_coverage(cli: CLI, tmp_path: Path) -> None:
    code, out = cli(
        "run",
        *_comparison_run("rnd"),
        "run.max_steps=512",
        "tracking.enabled=false",
        "run.checkpoint_every=0",
        f"run.log_dir={tmp_path}",
    )
    assert code == 0, out
    assert "run finished: compare-minigrid-rnd" in out
    line = next(line for line in out.splitlines() if line.strip().startswith("coverage:"))
    start, end = (float(word) for word in line.split() if word[0].isdigit())
    assert 0 < start <= end <= 1
