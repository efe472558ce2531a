"""The `random` baseline: uniform actions, no training, the same runtime and metrics, resume."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console

from pamiqx.api import ActionSpec
from pamiqx.checkpoint import list_checkpoints, load_checkpoint, read_meta
from pamiqx.experiment import load_experiment
from pamiqx.learner.optimizers import FrozenPolicyOptimizer
from pamiqx.models.uniform_policy import UniformPolicy
from pamiqx.plugins.manager import load_plugins
from pamiqx.runtime.build import build_components, build_environments
from pamiqx.runtime.session import run_experiment
from tests.runtime_helpers import install_recorder, tiny_maze

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

# 99.9% quantiles of the chi-square distribution: 6 degrees of freedom (7 actions)
# and 11 (3 x 4 joint cells of a multi-discrete action).
CHI2_999 = {6: 22.458, 11: 31.264}


def _chi_square(counts: torch.Tensor) -> float:
    expected = counts.sum().item() / counts.numel()
    return float(((counts.double() - expected) ** 2 / expected).sum())


def test_discrete_actions_are_uniform_with_zero_values_and_no_parameters() -> None:
    policy = UniformPolicy(ActionSpec("discrete", (7,)))
    assert list(policy.parameters()) == [] and policy.state_dict() == {}
    torch.manual_seed(0)
    obs = torch.zeros(70_000, 1)
    step = policy(obs, policy.initial_state(70_000))
    actions = step.dist.sample()
    assert actions.shape == (70_000,) and actions.dtype == torch.int64
    counts = torch.bincount(actions, minlength=7)
    assert _chi_square(counts) < CHI2_999[6], counts
    assert torch.allclose(step.dist.log_prob(actions), torch.full((70_000,), -math.log(7)))
    assert set(step.values) == {"ext", "int"}
    assert all(bool((v == 0).all()) for v in step.values.values())


def test_multi_discrete_sub_actions_are_uniform_and_independent() -> None:
    policy = UniformPolicy(ActionSpec("multi_discrete", (3, 4)))
    torch.manual_seed(1)
    step = policy(torch.zeros(60_000, 5), policy.initial_state(60_000))
    actions = step.dist.sample()
    assert actions.shape == (60_000, 2)
    joint = torch.bincount(actions[:, 0] * 4 + actions[:, 1], minlength=12)
    assert _chi_square(joint) < CHI2_999[11], joint
    assert float(step.entropy()[0]) == pytest.approx(math.log(12))


def test_windows_give_the_same_distribution() -> None:
    policy = UniformPolicy(ActionSpec("discrete", (5,)))
    obs = torch.zeros(4, 3, 2)  # T = 4 steps of B = 3 worlds
    step = policy.forward_sequence(obs, policy.initial_state(3), None, torch.zeros(4, 3), None)
    assert step.values["ext"].shape == (12,)
    assert torch.allclose(step.entropy(), torch.full((12,), math.log(5)))


def test_bad_action_spaces_are_refused() -> None:
    with pytest.raises(ValueError, match="one size"):
        UniformPolicy(ActionSpec("discrete", (3, 4)))
    with pytest.raises(ValueError, match="positive"):
        UniformPolicy(ActionSpec("multi_discrete", (3, 0)))


def _run(path: Path, *overrides: str, resume: str | None = None) -> int:
    manager = load_plugins()
    resolved = load_experiment(path, list(overrides), manager)
    with open(os.devnull, "w") as devnull:
        return run_experiment(resolved, manager, resume=resume, console=Console(file=devnull))


def _initial_models(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The models as a fresh run of the experiment builds them (same seed)."""
    resolved = load_experiment(path, [], load_plugins())
    envs = build_environments(resolved, torch.device("cpu"), None)
    components = build_components(resolved, envs, None)
    assert isinstance(components.policy, UniformPolicy)
    assert isinstance(components.learner.optimizer, FrozenPolicyOptimizer)
    return {
        role: {k: v.clone() for k, v in module.state_dict().items()}
        for role, module in components.models.items()
    }


def _assert_same(saved: dict[str, Any], initial: dict[str, dict[str, torch.Tensor]]) -> None:
    assert set(saved) == set(initial)
    for role, weights in initial.items():
        assert set(saved[role]) == set(weights), role
        for name, value in weights.items():
            assert torch.equal(saved[role][name], value), f"{role}.{name} changed"


def test_lockstep_run_trains_nothing_logs_finite_metrics_and_resumes(
    dist_root: Path, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    install_recorder(dist_root)
    logs = tmp_path / "logs"
    path = write_toml(tiny_maze(logs, curiosity="random", max_steps=128, checkpoint_every=64))
    initial = _initial_models(path)
    assert initial["policy"] == {} and initial["encoder"]  # the host's encoder goes unused
    assert _run(path) == 0
    import pamiqx_recorder  # type: ignore[import-not-found]

    metrics = list(pamiqx_recorder.METRICS)
    assert [step for step, _ in metrics] == [64, 128]
    for _, values in metrics:
        assert all(math.isfinite(v) for v in values.values()), values
        assert values["reward/intrinsic"] == 0.0
        assert 0 < values["coverage"] <= 1
        assert not [k for k in values if k.startswith(("loss/", "ppo/", "value/", "grad"))]
    [run_dir] = (logs / "tiny").iterdir()
    assert [read_meta(p)["step"] for p in list_checkpoints(run_dir)] == [64, 128]
    state, _ = load_checkpoint(list_checkpoints(run_dir)[-1], "tiny")
    _assert_same(state["models"], initial)
    assert state["learner"]["optimizer"] == {"state": {}, "param_groups": []}

    pamiqx_recorder.METRICS.clear()
    assert _run(path, "run.max_steps=256", resume="latest") == 0
    assert [step for step, _ in pamiqx_recorder.METRICS] == [192, 256]
    state, _ = load_checkpoint(list_checkpoints(run_dir)[-1], "tiny")
    assert state["step"] == 256
    _assert_same(state["models"], initial)


def test_random_maze_experiment_file_selects_the_baseline() -> None:
    resolved = load_experiment(EXPERIMENTS / "random-maze.toml", [], load_plugins())
    assert resolved.experiment.name == "random-maze"
    assert resolved.curiosity.entry.name == "random"
    assert resolved.environment.entry.name == "sim-maze"
