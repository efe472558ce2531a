"""Real-time runs whose acting runs in its own process: faults, signals, kills, weights.

The beat and the stored steps of process-mode runs are checked with thread mode's
in tests/test_runtime.py (``test_realtime_world_keeps_its_beat_while_training_runs``)
and tests/test_ticks.py; the VRChat plugin's in its own tests.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
import torch
from rich.console import Console

from pamiqx.api.errors import PamiqxError
from pamiqx.checkpoint import list_checkpoints, load_checkpoint, read_meta
from pamiqx.experiment import load_experiment
from pamiqx.faults import PluginFault
from pamiqx.plugins.manager import load_plugins
from pamiqx.runtime.remote import ActingProcessDied
from pamiqx.runtime.session import run_experiment
from pamiqx.runtime.shared_weights import SharedWeights
from tests.runtime_helpers import REALTIME_EXPERIMENT, install_ticking_world

ROOT = Path(__file__).resolve().parents[1]


def _experiment(logs: Path, max_steps: int, checkpoint_every: int = 64) -> str:
    return REALTIME_EXPERIMENT.format(
        max_steps=max_steps, time_scale=5.0, checkpoint_every=checkpoint_every, log_dir=logs
    )


def _run(path: Path, *overrides: str, resume: str | None = None) -> tuple[int, str]:
    console = io.StringIO()
    manager = load_plugins()
    resolved = load_experiment(path, list(overrides), manager)
    code = run_experiment(resolved, manager, resume=resume, console=Console(file=console))
    return code, console.getvalue()


@pytest.fixture
def _no_thread_traceback(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    # pamiq-core's thread did not log the error with a traceback before the run reported it.
    assert not [r for r in caplog.records if r.exc_info is not None]


def _a_fault_in_either_start(test: Callable[..., None]) -> Callable[..., None]:
    """Run ``test`` with a forked and a spawned acting process, its error reported alone.

    The run's one-paragraph error must come alone: a thread's traceback, logged by
    pamiq-core or printed by Python's thread hook, fails the test.
    """
    marks = (
        pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
        pytest.mark.usefixtures("_no_thread_traceback"),
        pytest.mark.parametrize("start", ["fork", "spawn"]),
    )
    for mark in marks:
        test = mark(test)
    return test


def _acting_children() -> list[multiprocessing.Process]:
    return [p for p in multiprocessing.active_children() if p.name == "pamiqx-acting"]


@_a_fault_in_either_start
def test_a_world_that_raises_in_the_acting_process_is_named(
    start: str, dist_root: Path, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    install_ticking_world(dist_root)
    path = write_toml(_experiment(tmp_path / "logs", max_steps=400))
    with pytest.raises(PluginFault) as fault:  # the command line prints it, exit 2
        _run(path, "environment.fail_at=150", f"run.acting_start={start}")
    text = str(fault.value)
    assert "environment plugin 'ticking-world' (pamiqx-ticking 1.0) failed in observe()" in text
    assert "OSError: the camera went away" in text and "\n" not in text
    [run_dir] = (tmp_path / "logs" / "realtime").iterdir()
    last = list_checkpoints(run_dir)[-1]
    assert read_meta(last)["step"] in range(128, 150)  # the last good one, loadable
    load_checkpoint(last, "realtime")
    assert not _acting_children()


@_a_fault_in_either_start
def test_kill_9_of_the_acting_process_stops_the_run_and_it_resumes(
    start: str, dist_root: Path, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    install_ticking_world(dist_root)
    logs = tmp_path / "logs"
    path = write_toml(_experiment(logs, max_steps=300))

    def kill_after_a_checkpoint() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(logs.glob("realtime/*/checkpoints/step-*")):
            time.sleep(0.02)
        time.sleep(0.3)
        for child in _acting_children():
            os.kill(child.pid or 0, signal.SIGKILL)

    killer = threading.Thread(target=kill_after_a_checkpoint)
    killer.start()
    with pytest.raises(ActingProcessDied) as died:  # the command line prints it, exit 2
        _run(path, f"run.acting_start={start}")
    killer.join()
    assert "the acting process (pid" in str(died.value)
    assert "was killed by SIGKILL" in str(died.value)
    [run_dir] = (logs / "realtime").iterdir()
    for checkpoint in list_checkpoints(run_dir):
        load_checkpoint(checkpoint, "realtime")
    code, out = _run(path, f"run.acting_start={start}", resume="latest")
    assert code == 0, out
    assert read_meta(list_checkpoints(run_dir)[-1])["step"] == 300


def test_a_spawned_acting_process_holds_the_world_alone_and_continues_its_state(
    dist_root: Path, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    """As a CUDA run starts it: the world is built again there, never held twice."""
    install_ticking_world(dist_root)
    logs, lifecycle = tmp_path / "logs", tmp_path / "lifecycle.txt"
    path = write_toml(_experiment(logs, max_steps=96, checkpoint_every=0))
    options = ["run.acting_start=spawn", f'environment.lifecycle="{lifecycle}"']
    assert _run(path, *options)[0] == 0
    path.write_text(path.read_text().replace("max_steps = 96", "max_steps = 160"))
    code, out = _run(path, *options, resume="latest")
    assert code == 0, out
    events = [line.split() for line in lifecycle.read_text().splitlines()]
    me = str(os.getpid())
    # Each run: this process sets its world up, lets it go before the acting process
    # starts, which sets up its own (from the checkpointed state) and tears it down.
    assert [(what, pid == me) for what, pid, _ in events] == [
        ("setup", True),
        ("teardown", True),
        ("setup", False),
        ("teardown", False),
    ] * 2
    # The world's own state crossed both ways (set up fresh, then loaded): 96 actions
    # and the hold-still one after the last step; then 64 more and the hold-still one.
    assert [int(t) for *_, t in events] == [0, 0, 0, 97, 0, 97, 0, 162]
    [run_dir] = (logs / "realtime").iterdir()
    assert read_meta(list_checkpoints(run_dir)[-1])["step"] == 160
    assert not _acting_children()


def test_auto_forks_on_a_cpu_and_spawns_with_cuda() -> None:
    from pamiqx.runtime.realtime import RealtimeSettings

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert RealtimeSettings().start_method(cpu) == "fork"
    assert RealtimeSettings().start_method(cuda) == "spawn"
    assert RealtimeSettings(acting_start="spawn").start_method(cpu) == "spawn"
    with pytest.raises(PamiqxError, match="a CUDA context does not survive a fork"):
        RealtimeSettings(acting_start="fork").start_method(cuda)


def test_an_experiment_that_cannot_be_sent_to_a_spawned_process_is_named() -> None:
    from pamiqx.runtime.remote import ActingProcess

    unpicklable = attrs.make_class("Local", ["build"])(lambda: None)  # no module to import
    process = ActingProcess(unpicklable, multiprocessing.get_context("spawn"))
    with pytest.raises(PamiqxError, match="could not be pickled") as error:
        process.start()
    assert "run.acting = 'thread'" in str(error.value)


def _spawn(path: Path, dist_root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(dist_root), str(ROOT)])}
    return subprocess.Popen(
        [sys.executable, "-m", "pamiqx", "run", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
        start_new_session=True,  # its own process group, as a terminal's job
    )


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("signal_name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_to_the_whole_job_checkpoints_once_and_leaves_no_process(
    signal_name: str,
    code: int,
    dist_root: Path,
    tmp_path: Path,
    write_toml: Callable[..., Path],
) -> None:
    """Ctrl-C in a terminal (or a SIGTERM to the job) reaches both processes."""
    install_ticking_world(dist_root)
    logs = tmp_path / "logs"
    path = write_toml(_experiment(logs, max_steps=100_000, checkpoint_every=0))
    proc = _spawn(path, dist_root)
    assert _wait_for(lambda: bool(list(logs.glob("realtime/*/events.jsonl"))), 90)
    time.sleep(2.0)
    os.killpg(proc.pid, signal.Signals[signal_name])  # every process of the job
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, out
    assert "Traceback" not in out
    [run_dir] = (logs / "realtime").iterdir()
    [checkpoint] = list_checkpoints(run_dir)
    assert read_meta(checkpoint)["reason"] == f"signal {signal_name}"
    load_checkpoint(checkpoint, "realtime")
    assert _wait_for(lambda: not _group_alive(proc.pid), 10)  # the acting process ended too


@pytest.mark.timeout(180)
def test_kill_9_of_the_training_process_ends_the_acting_process(
    dist_root: Path, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    install_ticking_world(dist_root)
    logs = tmp_path / "logs"
    path = write_toml(_experiment(logs, max_steps=100_000, checkpoint_every=64))
    proc = _spawn(path, dist_root)
    assert _wait_for(lambda: bool(list(logs.glob("realtime/*/checkpoints/step-*"))), 90)
    proc.kill()
    proc.communicate(timeout=30)
    assert _wait_for(lambda: not _group_alive(proc.pid), 10)  # no orphan keeps acting
    [run_dir] = (logs / "realtime").iterdir()
    for checkpoint in list_checkpoints(run_dir):  # every complete checkpoint loads
        load_checkpoint(checkpoint, "realtime")


@pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks")
def test_shared_weights_reach_acting_and_the_trainer_waits_only_for_a_stepping_one() -> None:
    context = multiprocessing.get_context("fork")
    trained, acting = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    weights = SharedWeights({"policy": trained}, context)
    assert weights.pull({"policy": acting}, 0) is None  # nothing published yet
    with torch.no_grad():
        trained.weight.fill_(2.0)
    version = weights.publish({"policy": trained}, 7)
    assert weights.pull({"policy": acting}, version) is None  # already current: no copy
    assert not torch.equal(acting.weight, trained.weight)
    assert weights.pull({"policy": acting}, version - 1) == (version, 7)
    assert torch.equal(acting.weight, trained.weight) and weights.taken_step == 7
    newer = weights.publish({"policy": trained}, 9)
    weights.wait_taken(newer, lambda: True)  # acting is not stepping: no wait
    weights.set_stepping(True)
    started = time.monotonic()
    weights.wait_taken(newer, lambda: time.monotonic() - started < 0.2)  # until it died
    assert time.monotonic() - started >= 0.2
    # Acting takes it from another process.
    child = context.Process(target=weights.pull, args=({"policy": acting}, version))
    child.start()
    weights.wait_taken(newer, child.is_alive)
    child.join()
    assert weights.taken_step == 9
