"""The built-in environment plugins through the pamiqx Environment interface."""

from __future__ import annotations

import io
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from pamiqx.api import BuildContext
from pamiqx.api.errors import PluginError
from pamiqx.checkpoint import to_numpy, to_safe
from pamiqx.envs.gymnasium_env import GymnasiumEnvironment, GymnasiumOptions, GymnasiumPlugin
from pamiqx.envs.sim_maze import SimMazeOptions, SimMazePlugin

CONTEXT = BuildContext("t", seed=5)


def test_sim_maze_specs_and_coverage() -> None:
    env = SimMazePlugin().build(SimMazeOptions(size=32), CONTEXT)
    env.setup()
    first = env.observe()
    assert first.observation.shape == (32, 32, 3) and first.observation.dtype == np.uint8
    assert first.episode_start and not env.observe().episode_start
    assert env.action_spec.kind == "discrete" and env.action_spec.nvec == (7,)
    start = env.evaluation_metrics()["coverage"]
    rng = np.random.default_rng(0)
    for _ in range(300):
        env.affect(np.int64(rng.integers(0, 7)))
    assert env.evaluation_metrics()["coverage"] > start


def test_sim_maze_paces_a_real_time_run_at_its_control_rate() -> None:
    env = SimMazePlugin().build(SimMazeOptions(size=32, control_hz=30.0), CONTEXT)
    assert env.control_interval == pytest.approx(1 / 30)
    assert not env.realtime  # lock-step unless the run asks for run.mode = "realtime"
    with pytest.raises(ValueError, match="control_hz"):
        SimMazeOptions(control_hz=0.0)


def test_sim_maze_multi_discrete_and_episodes() -> None:
    env = SimMazePlugin().build(
        SimMazeOptions(size=24, action_mode="multi_discrete", episode_steps=5), CONTEXT
    )
    env.setup()
    env.observe()
    assert env.action_spec.nvec == (3, 3, 3, 2, 2)
    starts = []
    for _ in range(10):
        env.affect(np.array([1, 0, 0, 0, 1]))
        starts.append(env.observe().episode_start)
    assert starts == [False] * 4 + [True] + [False] * 4 + [True]


def test_sim_maze_state_survives_a_safe_checkpoint() -> None:
    env = SimMazePlugin().build(SimMazeOptions(size=32), CONTEXT)
    env.setup()
    for a in [1, 1, 5, 1, 1, 6, 1]:
        env.affect(np.int64(a))
    buffer = io.BytesIO()
    torch.save(to_safe(env.state_dict()), buffer)
    buffer.seek(0)
    state = to_numpy(torch.load(buffer, weights_only=True))
    other = SimMazePlugin().build(SimMazeOptions(size=32), CONTEXT)
    other.setup()
    other.load_state_dict(state)
    for a in [1, 5, 1]:
        env.affect(np.int64(a))
        other.affect(np.int64(a))
    assert np.array_equal(env.observe().observation, other.observe().observation)
    assert env.evaluation_metrics() == other.evaluation_metrics()


def test_gymnasium_cartpole_is_episodic_with_returns() -> None:
    env = GymnasiumPlugin().build(GymnasiumOptions(id="CartPole-v1"), CONTEXT)
    env.setup()
    assert env.observation_spec.kind == "vector" and env.observation_spec.shape == (4,)
    starts = 0
    for _ in range(200):
        env.affect(np.int64(0))
        starts += env.observe().episode_start
    assert starts >= 5  # always pushing left ends episodes quickly
    metrics = env.evaluation_metrics()
    assert (
        5 <= metrics["episode_length"] < 30
        and metrics["episode_return"] == metrics["episode_length"]
    )
    assert env.evaluation_metrics() == {}  # reported once


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (GymnasiumOptions(id="CartPol-v1"), "did you mean 'CartPole-v1'"),
        (GymnasiumOptions(id="Pendulum-v1"), "action space"),
        (GymnasiumOptions(id="CartPole-v1", kwargs={"bogus": 1}), "CartPole-v1"),
        (GymnasiumOptions(id="CartPole-v1", wrappers=("nowhere:Wrapper",)), "cannot be imported"),
    ],
)
def test_gymnasium_errors_name_the_problem(options: GymnasiumOptions, message: str) -> None:
    with pytest.raises(PluginError) as info:
        GymnasiumPlugin().build(options, CONTEXT)
    assert message.lower() in str(info.value).lower()


class _Reporting(gym.Wrapper[Any, Any, Any, Any]):
    """A wrapper that reports metrics and keeps checkpoint state, as coverage wrappers do."""

    def __init__(self, env: gym.Env[Any, Any], metrics: dict[str, float]) -> None:
        super().__init__(env)
        self.metrics = metrics
        self.steps = 0

    def step(self, action: Any) -> Any:
        self.steps += 1
        return self.env.step(action)

    def evaluation_metrics(self) -> dict[str, float]:
        return {**self.metrics, "steps": float(self.steps)}

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])


def _reporting_cartpole() -> GymnasiumEnvironment:
    inner = _Reporting(gym.make("CartPole-v1"), {"a": 1.0, "b": 1.0})
    env = GymnasiumEnvironment(_Reporting(inner, {"b": 2.0}), seed=0)
    env.setup()
    return env


def test_gymnasium_wrappers_report_metrics_and_keep_state() -> None:
    env = _reporting_cartpole()
    for _ in range(3):
        env.affect(np.int64(0))
    # Every layer reports; the outer wrapper wins a clash ("b", "steps").
    assert env.evaluation_metrics() == {"a": 1.0, "b": 2.0, "steps": 3.0}
    state = env.state_dict()
    other = _reporting_cartpole()
    other.load_state_dict(state)
    assert other.evaluation_metrics()["steps"] == 3.0
    with pytest.raises(KeyError):  # another wrapper list: the runtime reports a mismatch
        other.load_state_dict({"layers": {}})
