"""The life of an online curiosity, as `pamiqx.api.Curiosity` documents it.

Each documented fact is checked twice where it can be: through
`pamiqx.testing.TrainingHarness` (the host's collector and learner, with the
observations under the test's control) and in real runs (a lock-step maze run
and its resume, and a real-time run on pamiq-core's threads), with a probe
mechanism that records every call the host makes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import attrs
import numpy as np
import numpy.typing as npt
import pytest
import torch

from pamiqx.api import ActionSpec, Curiosity, ObservationSpec, Transitions
from pamiqx.learner.batch import RolloutBatch
from pamiqx.learner.options import PPOOptions
from pamiqx.testing import TrainingHarness
from tests.fake_dists import write_distribution
from tests.runtime_helpers import tiny_maze

E = 2
T = 8
OBS = ObservationSpec((2,), "float32", "vector")
ACTIONS = ActionSpec("discrete", (3,))


@attrs.frozen
class Call:
    """One agent_step call: the step whose observation it saw, and its arguments."""

    step: int
    action: torch.Tensor | None
    starts: torch.Tensor
    returned: torch.Tensor | None


class Probe(Curiosity):
    """An online mechanism returning ``call index + 1`` for every world (None on request)."""

    style: ClassVar[Literal["batch", "online"]] = "online"

    def __init__(self, none_at: tuple[int, ...] = ()) -> None:
        self.none_at = none_at
        self.calls: list[Call] = []
        self.order: list[str] = []
        self.seen: list[torch.Tensor] = []
        self.net = torch.nn.Linear(1, 1)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"net": self.net}

    def agent_step(
        self, observation: torch.Tensor, action: torch.Tensor | None, episode_start: torch.Tensor
    ) -> torch.Tensor | None:
        index = len(self.calls)
        reward = None if index in self.none_at else torch.full((E,), float(index + 1))
        step = int(observation[0, 0])
        prev = None if action is None else action.clone()
        self.calls.append(Call(step, prev, episode_start.clone(), reward))
        return reward

    def rewards(self, batch: Transitions) -> torch.Tensor:
        self.order.append("rewards")
        assert batch.intrinsic is not None
        self.seen.append(batch.intrinsic.clone())
        return batch.intrinsic

    def update(self, batch: Transitions) -> dict[str, float]:
        self.order.append("update")
        assert batch.intrinsic is not None
        assert torch.equal(batch.intrinsic, self.seen[-1])  # the batch rewards() scored
        return {"calls": float(len(self.calls))}


def _observations(t: int) -> npt.NDArray[np.float32]:
    """Step ``t``'s observations: ``[t, world]`` (the probe reads ``t`` back)."""
    return np.array([[t, e] for e in range(E)], dtype=np.float32)


def _harness(probe: Probe) -> TrainingHarness:
    options = PPOOptions(rollout_steps=T, minibatch_size=16, epochs=1)
    return TrainingHarness(probe, OBS, ACTIONS, num_envs=E, options=options)


def _intrinsic(batch: RolloutBatch) -> torch.Tensor:
    rewards = batch.transitions(online=True).intrinsic
    assert rewards is not None
    return rewards


# --- through the harness --------------------------------------------------------------


def test_first_step_gets_no_action_and_its_reward_is_discarded() -> None:
    probe = Probe()
    batch = _harness(probe).collect(_observations)
    first = probe.calls[0]
    assert (first.step, first.action) == (0, None)
    # Row t is the transition into o_{t+1}, scored by call t + 1 (returning t + 2); call 0's
    # reward has no transition and is dropped.
    expected = torch.arange(2, T + 2, dtype=torch.float32)[:, None].expand(T, E)
    assert torch.equal(_intrinsic(batch), expected)


def test_each_call_gets_the_action_that_led_to_its_observation() -> None:
    probe = Probe()
    batch = _harness(probe).collect(_observations)
    assert [call.step for call in probe.calls] == list(range(T + 1))  # the last at hand-over
    for call in probe.calls[1:]:
        assert call.action is not None
        assert torch.equal(call.action, batch.actions[call.step - 1])


def test_episode_start_passes_the_action_that_ended_the_episode() -> None:
    probe = Probe()

    def starts(t: int) -> npt.NDArray[np.bool_]:
        return np.array([t == 0 or (t == 5 and e == 0) for e in range(E)])

    batch = _harness(probe).collect(_observations, episode_starts=starts)
    call = probe.calls[5]
    assert call.starts.tolist() == [True, False]
    # Its observation starts the new episode; its action ended the old one (dones row 4),
    # and its reward is stored for that last transition of the episode.
    assert call.action is not None and torch.equal(call.action, batch.actions[4])
    assert batch.dones[4].tolist() == [True, False]
    assert _intrinsic(batch)[4].tolist() == [6.0, 6.0]


def test_returning_none_stores_a_zero_reward() -> None:
    probe = Probe(none_at=(3, 6))
    batch = _harness(probe).collect(_observations)
    rewards = _intrinsic(batch)
    assert rewards[2].tolist() == [0.0, 0.0] and rewards[5].tolist() == [0.0, 0.0]
    assert bool((rewards[[0, 1, 3, 4, 6, 7]] > 0).all())


def test_each_transition_is_scored_once_across_rollouts() -> None:
    probe = Probe()
    harness = _harness(probe)
    first = harness.collect(_observations)
    second = harness.collect(_observations)
    # The first rollout's last transition (into o_8) is scored at hand-over, within its own
    # batch; the next step acts on o_8 without scoring it again.
    assert [call.step for call in probe.calls] == list(range(2 * T + 1))
    assert _intrinsic(first)[-1].tolist() == [T + 1.0] * E
    assert _intrinsic(second)[:, 0].tolist() == [float(k + 2) for k in range(T, 2 * T)]


def test_rewards_then_update_on_the_batch_with_the_online_rewards() -> None:
    probe = Probe()
    harness = _harness(probe)
    batch = harness.collect(_observations)
    metrics = harness.train(batch)
    assert probe.order == ["rewards", "update"]
    assert torch.equal(probe.seen[0], _intrinsic(batch))
    assert metrics["curiosity/calls"] == T + 1


def test_the_last_action_survives_a_checkpoint_of_the_collector() -> None:
    probe = Probe()
    harness = _harness(probe)
    harness.collect(_observations)
    for t in range(T, T + 3):  # three steps into the next rollout
        harness.collector.act(_observations(t), np.zeros(E, dtype=np.bool_))
        harness.collector.complete(
            _observations(t + 1), np.zeros(E, dtype=np.float32), np.zeros(E, dtype=np.bool_)
        )
    state = harness.collector.state_dict()
    last_action = harness.collector.agent.prev_actions
    assert last_action is not None and torch.equal(state["agent"]["prev_actions"], last_action)

    resumed = Probe()
    other = _harness(resumed)
    other.collector.load_state_dict(state)
    other.collector.act(_observations(T + 3), np.zeros(E, dtype=np.bool_))
    [call] = resumed.calls
    assert call.action is not None and torch.equal(call.action, last_action)


# --- real runs ------------------------------------------------------------------------

# A probe plugin recording which thread makes each call, what it got, and what else was
# running at that moment; `update_sleep` widens the training phase in real-time runs.
ONLINE_PROBE = '''
import threading
import time
from typing import Any, ClassVar, Literal

import attrs
import torch

from pamiqx.api import Curiosity, CuriosityPlugin, hookimpl

CONTEXTS: list[Any] = []
CALLS: list[tuple[str, str, dict[str, Any]]] = []
BUSY = {"agent_step": 0, "update": 0}


def _record(method: str, **info: Any) -> None:
    CALLS.append((method, threading.current_thread().name, info))


@attrs.frozen
class Options:
    update_sleep: float = 0.0


class OnlineProbe(Curiosity):
    style: ClassVar[Literal["batch", "online"]] = "online"

    def __init__(self, update_sleep: float) -> None:
        self.update_sleep = update_sleep
        self.net = torch.nn.Linear(1, 1)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"net": self.net}

    def agent_step(self, observation, action, episode_start):
        BUSY["agent_step"] += 1
        try:
            _record(
                "agent_step",
                action=None if action is None else action.cpu().clone(),
                worlds=int(observation.shape[0]),
                during_update=BUSY["update"] > 0,
                inference_mode=torch.is_inference_mode_enabled(),
            )
            return torch.ones(observation.shape[0])
        finally:
            BUSY["agent_step"] -= 1

    def rewards(self, batch):
        _record("rewards")
        return batch.intrinsic

    def update(self, batch):
        BUSY["update"] += 1
        try:
            _record("update")
            time.sleep(self.update_sleep)
            return {"probe": 1.0}
        finally:
            BUSY["update"] -= 1

    def state_dict(self):
        _record("state_dict", busy=dict(BUSY))
        return super().state_dict()

    def load_state_dict(self, state):
        _record("load_state_dict")
        super().load_state_dict(state)


class OnlineProbePlugin(CuriosityPlugin):
    """Records how the host drives an online mechanism."""

    name = "online-probe"
    Options = Options

    def build(self, options, context, observation_spec, action_spec):
        CONTEXTS.append(context)
        return OnlineProbe(options.update_sleep)


@hookimpl
def pamiqx_register_curiosities():
    return [OnlineProbePlugin]
'''


@pytest.fixture
def probe_plugin(dist_root: Path) -> Any:
    """The probe plugin, installed; returns its module (CALLS, CONTEXTS)."""
    write_distribution(
        dist_root, "pamiqx-online-probe", "1.0", {"pamiqx_online_probe": ONLINE_PROBE}, {}
    )
    # Entry point: the module registers its curiosity through the hook.
    entry = dist_root / "pamiqx_online_probe-1.0.dist-info" / "entry_points.txt"
    entry.write_text("[pamiqx]\nonline-probe = pamiqx_online_probe\n")
    import pamiqx_online_probe  # type: ignore[import-not-found]

    return pamiqx_online_probe


def _run(path: Path, *overrides: str, resume: str | None = None) -> int:
    from rich.console import Console

    from pamiqx.experiment import load_experiment
    from pamiqx.plugins.manager import load_plugins
    from pamiqx.runtime.session import run_experiment

    manager = load_plugins()
    resolved = load_experiment(path, list(overrides), manager)
    with open(os.devnull, "w") as devnull:
        return run_experiment(resolved, manager, resume=resume, console=Console(file=devnull))


Calls = list[tuple[str, str, dict[str, Any]]]


def _of(calls: Calls, method: str) -> list[tuple[str, dict[str, Any]]]:
    return [(thread, info) for name, thread, info in calls if name == method]


def test_lockstep_run_and_its_resume(
    probe_plugin: Any, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    from pamiqx.checkpoint import list_checkpoints, load_checkpoint

    logs = tmp_path / "logs"
    path = write_toml(tiny_maze(logs, max_steps=128, checkpoint_every=64, curiosity="online-probe"))
    assert _run(path) == 0
    calls: Calls = list(probe_plugin.CALLS)
    # Built knowing the number of worlds, which every agent_step call sees.
    assert probe_plugin.CONTEXTS[-1].num_envs == E
    steps = _of(calls, "agent_step")
    assert {info["worlds"] for _, info in steps} == {E}
    # One thread makes every call; agent_step runs in inference mode.
    assert {thread for _, thread, _ in calls} == {"MainThread"}
    assert all(info["inference_mode"] for _, info in steps)
    # Only the very first call has no action: 128 steps / 2 worlds = 64 acting steps in
    # rollouts of 32, each also scored once at hand-over, and no step scored twice.
    assert steps[0][1]["action"] is None
    assert all(info["action"] is not None for _, info in steps[1:])
    assert len(steps) == 64 + 1
    # Each rollout: rewards then update; checkpoints between phases.
    phases = [name for name, _, _ in calls if name != "agent_step"]
    assert phases == ["rewards", "update", "state_dict", "rewards", "update", "state_dict"]

    [run_dir] = (logs / "tiny").iterdir()
    state, _ = load_checkpoint(list_checkpoints(run_dir)[-1], "tiny")
    assert state["collector"]["agent"]["prev_actions"] is not None  # the last action is saved
    probe_plugin.CALLS.clear()
    assert _run(path, "run.max_steps=192", resume="latest") == 0
    resumed: Calls = list(probe_plugin.CALLS)
    assert resumed[0][0] == "load_state_dict"
    # A resume has no first step: every call has an action. The checkpoint came after a
    # hand-over, so the observation it resumes on was scored already: 32 acting steps,
    # 31 of them scored, plus the new rollout's last transition at hand-over.
    steps = _of(resumed, "agent_step")
    assert all(info["action"] is not None for _, info in steps)
    assert len(steps) == 32


def test_realtime_run_threads(
    probe_plugin: Any, dist_root: Path, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    from tests.runtime_helpers import REALTIME_EXPERIMENT, install_ticking_world

    install_ticking_world(dist_root)
    text = REALTIME_EXPERIMENT.format(
        max_steps=192, time_scale=10.0, checkpoint_every=64, log_dir=tmp_path / "logs"
    )
    text += '\n[curiosity]\nplugin = "online-probe"\nupdate_sleep = 0.15\n'
    assert _run(write_toml(text)) == 0
    calls: Calls = list(probe_plugin.CALLS)
    assert probe_plugin.CONTEXTS[-1].num_envs == 1
    [acting] = {thread for thread, _ in _of(calls, "agent_step")}
    [training] = {thread for thread, _ in _of(calls, "rewards") + _of(calls, "update")}
    assert len({acting, training, "MainThread"}) == 3
    # agent_step and update run at the same time: shared state needs the mechanism's lock.
    assert any(info["during_update"] for _, info in _of(calls, "agent_step"))
    # Periodic checkpoints come from the control thread (the one that started the run),
    # with the other two paused; the final one after they have stopped.
    saves = _of(calls, "state_dict")
    assert len(saves) >= 2
    for thread, info in saves:
        assert thread == "MainThread"
        assert info["busy"] == {"agent_step": 0, "update": 0}
