"""The training runtime end to end: wiring, determinism, learning, checkpoints, resume, Aim."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from pamiqx.checkpoint import list_checkpoints, load_checkpoint, read_meta
from pamiqx.experiment import load_experiment
from pamiqx.plugins.manager import load_plugins
from pamiqx.runtime.session import run_experiment
from pamiqx.tracking import read_metrics
from tests.runtime_helpers import install_recorder, tiny_maze

ROOT = Path(__file__).resolve().parents[1]


def _run(path: Path, *overrides: str, resume: str | None = None) -> int:
    manager = load_plugins()
    resolved = load_experiment(path, list(overrides), manager)
    from rich.console import Console

    return run_experiment(
        resolved, manager, resume=resume, console=Console(file=open(os.devnull, "w"))
    )


def _recorded() -> list[tuple[int, dict[str, float]]]:
    import pamiqx_recorder  # type: ignore[import-not-found]

    return list(pamiqx_recorder.METRICS)


def _reset_recorder() -> None:
    import pamiqx_recorder  # type: ignore[import-not-found]

    pamiqx_recorder.METRICS.clear()


def test_test_curiosity_is_wired_and_its_reward_is_learned(
    dist_root: Path, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    install_recorder(dist_root)
    path = write_toml(tiny_maze(tmp_path / "logs", curiosity="forward-bonus", max_steps=3072))
    assert _run(path, "policy.ext_coef=0.0", "policy.lr=1e-3", "policy.entropy_coef=0.0") == 0
    import pamiqx_recorder  # type: ignore[import-not-found]

    assert pamiqx_recorder.CALLS["rewards"] == pamiqx_recorder.CALLS["update"] == 3072 // 64
    metrics = _recorded()
    fraction = [m["reward/intrinsic"] for _, m in metrics]  # share of steps walking forward
    assert metrics[-1][1]["curiosity/updates"] == 48
    # Uniform over 7 actions at the start; the policy learns to seek the intrinsic reward.
    assert sum(fraction[:3]) / 3 < 0.3
    assert sum(fraction[-3:]) / 3 > 0.5, fraction


def test_lockstep_runs_are_deterministic_per_seed(
    dist_root: Path, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    install_recorder(dist_root)
    runs = []
    for seed in (3, 3, 4):
        _reset_recorder()
        path = write_toml(tiny_maze(tmp_path / "logs", seed=seed, max_steps=192), f"s{seed}.toml")
        assert _run(path) == 0
        runs.append(
            [(s, {k: v for k, v in m.items() if not k.startswith("perf/")}) for s, m in _recorded()]
        )
    assert len(runs[0]) == 3
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_cartpole_is_learned_from_extrinsic_reward(dist_root: Path, tmp_path: Path) -> None:
    install_recorder(dist_root)
    code = _run(
        ROOT / "experiments" / "cartpole.toml",
        "run.max_steps=20000",
        f'run.log_dir="{tmp_path}"',
        "tracking.enabled=false",
    )
    assert code == 0
    returns = [m["episode_return"] for _, m in _recorded() if "episode_return" in m]
    assert returns[0] < 40, returns  # a random policy balances ~20 steps
    assert sum(returns[-3:]) / 3 > 150, returns


def test_checkpoint_resume_and_aim_run_continue(
    dist_root: Path, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    install_recorder(dist_root)
    logs = tmp_path / "logs"
    path = write_toml(tiny_maze(logs, max_steps=256, checkpoint_every=128, tracking=True))
    assert _run(path) == 0
    [run_dir] = (logs / "tiny").iterdir()
    checkpoints = list_checkpoints(run_dir)
    assert [read_meta(p)["step"] for p in checkpoints] == [128, 256]
    state, meta = load_checkpoint(checkpoints[-1], "tiny")
    assert state["step"] == 256 and meta["aim_run_hash"]
    assert (run_dir / "experiment.toml").read_text().startswith("# Resolved by pamiqx")

    assert _run(path, "run.max_steps=512", resume="latest") == 0
    assert read_meta(list_checkpoints(run_dir)[-1])["step"] == 512
    runs = read_metrics(logs / "aim")
    assert list(runs) == [meta["aim_run_hash"]]  # the resumed run continued the same Aim run
    coverage = runs[meta["aim_run_hash"]]["coverage"]
    steps = [s for s, _ in coverage]
    assert steps == sorted(steps) and steps[0] == 64 and steps[-1] == 512
    assert all(0 < v <= 1 for _, v in coverage)
    events = [
        json.loads(line)["event"] for line in (run_dir / "events.jsonl").read_text().splitlines()
    ]
    assert events[0] == "start" and "resume" in events and events[-1] == "end"


def test_corrupt_and_foreign_checkpoints_are_clear_errors(
    tmp_path: Path, write_toml: Callable[..., Path], cli: Callable[..., tuple[int, str]]
) -> None:
    logs = tmp_path / "logs"
    path = write_toml(tiny_maze(logs, max_steps=64, checkpoint_every=64))
    code, out = cli("run", str(path))
    assert code == 0, out
    [run_dir] = (logs / "tiny").iterdir()
    [checkpoint] = list_checkpoints(run_dir)
    state_file = checkpoint / "state.pt"
    data = bytearray(state_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state_file.write_bytes(bytes(data))
    code, out = cli("run", str(path), "run.max_steps=128", "--resume", "latest")
    assert code == 2 and "corrupt" in out and str(checkpoint) in out and "Traceback" not in out

    other = write_toml(tiny_maze(logs, name="other", max_steps=64), "other.toml")
    code, out = cli("run", str(other), "--resume", str(run_dir))
    assert code == 2 and "belongs to experiment 'tiny'" in out
    code, out = cli("run", str(other), "--resume", "latest")
    assert code == 2 and "no checkpoint of experiment 'other'" in out


def _spawn(path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pamiqx", "run", str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )


@pytest.mark.timeout(240)
def test_kill_9_at_a_random_moment_then_resume_latest(
    tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    logs = tmp_path / "logs"
    path = write_toml(tiny_maze(logs, max_steps=2048, checkpoint_every=64))
    proc = _spawn(path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(logs.glob("tiny/*/checkpoints/step-*")):
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 2.0))  # somewhere mid-run, possibly mid-checkpoint
    proc.kill()
    proc.wait()
    [run_dir] = (logs / "tiny").iterdir()
    for checkpoint in list_checkpoints(run_dir):  # every complete checkpoint loads
        load_checkpoint(checkpoint, "tiny")
    resumed = _spawn(path, "--resume", "latest")
    out, _ = resumed.communicate(timeout=200)
    assert resumed.returncode == 0, out
    final = list_checkpoints(run_dir)[-1]
    state, meta = load_checkpoint(final, "tiny")
    assert meta["step"] == state["step"] == 2048
    assert "steps: 2,048 / 2,048" in out
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))


@pytest.mark.timeout(240)
def test_sigterm_saves_a_checkpoint_and_exits_143(
    tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    logs = tmp_path / "logs"
    path = write_toml(tiny_maze(logs, max_steps=100_000, checkpoint_every=0, tracking=True))
    proc = _spawn(path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(logs.glob("tiny/*/events.jsonl")):
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out
    [run_dir] = (logs / "tiny").iterdir()
    [checkpoint] = list_checkpoints(run_dir)
    meta = read_meta(checkpoint)
    assert meta["reason"] == "signal SIGTERM" and 0 < meta["step"] < 100_000
    assert "Exception ignored" not in out and "Traceback" not in out


def test_device_auto_is_cpu_here_or_cuda_when_present() -> None:
    from pamiqx.runtime.build import resolve_device

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("acting", ["process", "thread", "process-spawn"])
def test_realtime_world_keeps_its_beat_while_training_runs(
    acting: str, dist_root: Path, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    from tests.runtime_helpers import REALTIME_EXPERIMENT, install_ticking_world

    install_recorder(dist_root)
    install_ticking_world(dist_root)
    _reset_recorder()
    logs = tmp_path / "logs"
    world_log = tmp_path / "world.txt"
    path = write_toml(
        REALTIME_EXPERIMENT.format(
            max_steps=400, time_scale=5.0, checkpoint_every=128, log_dir=logs
        )
    )
    switch_interval, threads = sys.getswitchinterval(), torch.get_num_threads()
    affinity = os.sched_getaffinity(0)
    overrides = [f"run.acting={acting.split('-')[0]}", f'environment.log="{world_log}"']
    if acting.endswith("spawn"):  # as CUDA runs start it: it builds its own world
        overrides.append("run.acting_start=spawn")
    assert _run(path, *overrides) == 0
    # The run's GIL switch interval, torch thread count and CPUs do not outlive it.
    assert (sys.getswitchinterval(), torch.get_num_threads()) == (switch_interval, threads)
    assert os.sched_getaffinity(0) == affinity
    # Intervals are measured on pamiq-core's scaled clock, the world's own time.
    sent = [line.split() for line in world_log.read_text().splitlines()]
    intervals = torch.tensor([float(t) for t, _, _ in sent], dtype=torch.float64).diff()
    assert len(sent) >= 400
    assert abs(float(intervals.median()) - 0.1) < 0.01
    phases = _recorded()
    assert len(phases) >= 10  # the trainer ran concurrently, once per 32-step rollout
    assert all("realtime/step_latency_ms_p99" in m for _, m in phases)
    # An overrun skips whole ticks and is counted: the actions stay on the 10 Hz grid, and
    # the skipped ticks the metrics report are those the world saw, but for the steps
    # after the last report (a rollout at most). Exact accounting: tests/test_ticks.py.
    ticks = torch.round(intervals / 0.1)
    seen = int((ticks - 1).clamp_min(0).sum())
    reported = sum(int(m["realtime/skipped_ticks"]) for _, m in phases)
    assert reported <= seen <= reported + 32
    assert float((ticks > 1).float().mean()) < 0.25
    # Acting lags training by the optimizer steps of the phase under way (4 here), at
    # most: the weights are published after each phase.
    assert all(m["realtime/staleness_steps_max"] <= 4 for _, m in phases)
    [run_dir] = (logs / "realtime").iterdir()
    checkpoints = list_checkpoints(run_dir)
    steps = [read_meta(p)["step"] for p in checkpoints]
    # The periodic ones, then the final. The acting process may take a step or two
    # more before it hears of the pause: they are in the checkpoint, stored.
    assert steps[-1] == 400 and [s // 128 for s in steps[:-1]][-2:] == [2, 3]
    assert not (run_dir / ".pamiq-core-states").exists()
    # Every stored step holds the action the world received right after that frame:
    # the final checkpoint's partial rollout (steps 384..399, frames t * 7 % 255).
    state, _ = load_checkpoint(checkpoints[-1], "realtime")
    rollout = state["collector"]["rollout"]
    received = {int(t): int(a) for _, t, a in sent}
    assert rollout["size"] == 16
    frames = rollout["observations"][:, 0, 0, 0, 0].long().tolist()
    actions = rollout["actions"][:, 0].tolist()
    for t, frame, action in zip(range(384, 400), frames, actions, strict=True):
        assert frame == t * 7 % 255 and received[t] == action


def test_realtime_run_trains_both_replay_regimes(
    dist_root: Path, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    """The reference path's regimes in real time: replay-window PPO and forward models.

    The training thread trains both on their schedule (a call every 32 new steps) from
    the steps the inference thread stored (the rate itself is `python -m bench realtime`'s).
    """
    from tests.runtime_helpers import REALTIME_EXPERIMENT, install_ticking_world

    install_recorder(dist_root)
    install_ticking_world(dist_root)
    _reset_recorder()
    logs = tmp_path / "logs"
    text = REALTIME_EXPERIMENT.format(
        max_steps=256, time_scale=10.0, checkpoint_every=128, log_dir=logs
    )
    text = text.replace(
        "[policy]\nrollout_steps = 32\nepochs = 4\nminibatch_size = 32\n",
        '[policy]\nregime = "replay-windows"\nrollout_steps = 32\ntrain_every = 32\n'
        "replay_size = 128\nwindows = 2\nwindow_length = 16\nminibatch_size = 16\n",
    )
    text = text.replace(
        '[models.encoder]\nplugin = "conv-encoder"\nfeature_dim = 32\nchannels = [8, 16, 16]',
        '[representation]\nplugin = "random"\nlatent_dim = 16\n\n'
        '[models.encoder]\nplugin = "mlp-encoder"\nfeature_dim = 32',
    )
    text += (
        '\n[curiosity]\nplugin = "adversarial"\ncore = "qlstm"\nhidden_dim = 16\n'
        'regime = "replay-windows"\nreplay_size = 128\ntrain_every = 32\nwindows = 2\n'
        "window_length = 16\n"
    )
    # Bounded staleness: acting takes the weights of every optimizer step (the trainer
    # waits for it; the acting process's own measure at each action).
    assert _run(write_toml(text), "run.max_staleness=1") == 0
    phases = _recorded()
    assert all(m["realtime/staleness_steps_max"] <= 1 for _, m in phases)
    trained = [m for _, m in phases if m.get("curiosity/gradient_steps", 0) > 0]
    assert len(trained) >= 3  # the forward model trained on replayed windows, repeatedly
    assert sum("loss/policy" in m for _, m in phases) >= 3  # and so did the policy
    assert all(m["curiosity/replay_steps"] <= 128 for _, m in phases)


def test_start_up_mistakes_are_clear_errors_and_write_nothing(
    tmp_path: Path, write_toml: Callable[..., Path], cli: Callable[..., tuple[int, str]]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = write_toml(tiny_maze(blocker / "logs", max_steps=64))
    code, out = cli("run", str(path))
    assert code == 2 and "cannot create a run directory" in out and "Traceback" not in out

    path = write_toml(tiny_maze(tmp_path / "logs", max_steps=64), "vector.toml")
    code, out = cli(
        "run", str(path), "models.encoder.plugin=mlp-encoder", "models.encoder.feature_dim=8"
    )
    # The message keeps its "[models.encoder]" (it is not swallowed as console markup).
    assert code == 2 and '[models.encoder] plugin = "conv-encoder"' in out
    assert list((tmp_path / "logs").glob("tiny/*")) == []  # no empty run directory left

    if not torch.cuda.is_available():
        code, out = cli("run", str(path), "run.device=cuda")
        assert code == 2 and "CUDA is not available" in out
        assert list((tmp_path / "logs").glob("tiny/*")) == []
