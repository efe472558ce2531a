"""``pamiqx sweep`` and ``pamiqx tune`` on a real Ray: a local sweep and its resume, a tune,
a lost node, a stopped driver.

Starting Ray takes ~15 s here, so the default suite's tests share one local
session (a module fixture); the multi-node and stopped-driver tests start
their own clusters and drivers and are marked slow (``make test-all``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from rich.console import Console

from pamiqx.experiment import load_experiment
from pamiqx.sweep import run_sweep, state
from pamiqx.sweep.spec import load_sweep_file
from pamiqx.sweep.tune import run_tune

ROOT = Path(__file__).resolve().parents[1]

# A small, quick run: a 32x32 maze, tiny networks, a checkpoint every 32 steps.
TINY = f"""
extends = "{ROOT / "experiments" / "rnd-maze.toml"}"
name = "tiny"

[run]
max_steps = {{steps}}
device = "cpu"
checkpoint_every = 32
keep_checkpoints = 2
log_every = 32

[environment]
size = 32

[models.encoder]
feature_dim = 16

[models.policy]
hidden = [16]

[curiosity]
plugin = "none"

[policy]
rollout_steps = 32
minibatch_size = 32
epochs = 1

[tracking]
enabled = false
"""


def sweep_file(folder: Path, steps: int, grid: str, resources: str) -> Path:
    """Write the tiny experiment and a sweep over it; return the sweep file."""
    (folder / "tiny.toml").write_text(TINY.format(steps=steps))
    path = folder / "sweep.toml"
    path.write_text(
        f'name = "t"\nexperiment = "tiny.toml"\n[grid]\n{grid}\n[resources]\n{resources}\n'
    )
    return path


def events(run_dir: Path) -> list[dict[str, object]]:
    """Return a run directory's events."""
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def finished_with(log_root: Path, steps: int) -> Path:
    """Assert that a trial's folder holds exactly one run directory, finished at ``steps``."""
    (run_dir,) = state.run_dirs(log_root, "tiny")
    end = state.end_event(run_dir)
    assert end is not None and end["status"] == "finished" and end["step"] == steps, end
    return run_dir


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray session for the module's default test."""
    ray.init(num_cpus=2, resources={"realtime_world": 1}, include_dashboard=False)
    yield
    ray.shutdown()


def test_a_local_sweep_runs_every_trial_and_a_resume_skips_them(
    local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    path = sweep_file(tmp_path, 64, "seed = [0, 1]", "cpus = 1\nmax_concurrent = 2")
    storage = tmp_path / "st"
    console = Console(record=True, width=200)
    assert run_sweep(path, storage, console=console) == 0, console.export_text()
    text = console.export_text()
    assert "[seed=0] finished: step 64/64" in text and "2 finished" in text
    before = {}
    for key in ("seed=0", "seed=1"):
        run_dir = finished_with(storage / "runs" / key, 64)
        before[key] = (run_dir / "events.jsonl").read_text()
        assert state.read_result(storage / "runs" / key)["step"] == 64
    # Ray Tune's state says both finished: they are not started again.
    assert run_sweep(path, storage, resume=True, console=console) == 0
    assert "2 finished" in console.export_text()
    for key in ("seed=0", "seed=1"):
        assert len(state.read_attempts(storage / "runs" / key)) == 1
    # Without Tune's state (a driver lost before it saved), each trial finds its run finished.
    shutil.rmtree(storage / "ray")
    assert run_sweep(path, storage, resume=True, console=console) == 0
    for key in ("seed=0", "seed=1"):
        run_dir = finished_with(storage / "runs" / key, 64)
        assert (run_dir / "events.jsonl").read_text() == before[key]  # nothing ran again
        attempts = state.read_attempts(storage / "runs" / key)
        assert len(attempts) == 2 and "skipped" in attempts[1]


def test_tune_gives_each_variant_the_same_budget_and_writes_its_best_settings(
    local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    (tmp_path / "tiny.toml").write_text(TINY.format(steps=64))
    path = tmp_path / "tune.toml"
    path.write_text(
        'name = "t"\nexperiment = "tiny.toml"\n'
        '[variants]\nnone = { curiosity.plugin = "none" }\nrnd = { curiosity.plugin = "rnd" }\n'
        "[resources]\ncpus = 1\nmax_concurrent = 2\n"
        '[tune]\ntrials = 2\nseeds = [100]\neval_seeds = [0, 1]\nmetric = "coverage"\n'
        'grace_steps = 32\nreduction_factor = 2\nsearch = "random"\n'
        "[tune.space]\npolicy.lr = { loguniform = [1e-4, 1e-3] }\n"
    )
    console = Console(record=True, width=200)
    assert run_tune(path, tmp_path / "st", console=console) == 0, console.export_text()
    text = console.export_text()
    assert "2 variants" in text and "2 trials per variant" in text
    assert "curiosity.lr in loguniform" in text  # rnd's own declared search space
    out = tmp_path / "st" / "tuned"
    lrs = []
    for variant in ("none", "rnd"):
        tuned = load_experiment(out / f"t-{variant}.toml")  # a valid experiment file
        assert tuned.curiosity.entry.name == variant
        lrs.append(tuned.experiment.policy.lr)
        assert 1e-4 <= lrs[-1] <= 1e-3
    # Each variant's trials ran on the tuning seed, in their own trial folders.
    assert len(list((tmp_path / "st" / "runs").rglob("seed=100"))) == 4
    evaluation = load_sweep_file(out / "t-eval.toml")
    assert evaluation.grid == (("seed", (0, 1)),)
    assert sorted(v.name for v in evaluation.variants) == ["none", "rnd"]


def _driver(path: Path, storage: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pamiqx", "sweep", str(path), "--storage", str(storage), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CI": "true"},
    )


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_a_lost_node_s_trials_resume_from_their_checkpoints(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    steps = 256
    path = sweep_file(
        tmp_path, steps, "seed = [0, 1]\npolicy.epochs = [1, 2]", "cpus = 1\nmax_failures = 3"
    )
    storage = tmp_path / "st"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    driver = _driver(path, storage, "--address", cluster.address)
    try:
        node_ids = {node.node_id for node in nodes}
        victim: list[Path] = []

        def running_with_checkpoint_on_a_node() -> bool:
            for root in (storage / "runs").glob("*"):
                attempts = state.read_attempts(root)
                if (
                    attempts
                    and attempts[-1].get("node") in node_ids
                    and state.has_checkpoint(root, "tiny")
                    and state.finished_run(root, "tiny", steps) is None
                ):
                    victim.append(root)
                    return True
            return False

        _wait(running_with_checkpoint_on_a_node, 600, "a trial with a checkpoint")
        lost_node = state.read_attempts(victim[0])[-1]["node"]
        cluster.remove_node(next(n for n in nodes if n.node_id == lost_node), allow_graceful=False)
        output, _ = driver.communicate(timeout=900)
    finally:
        if driver.poll() is None:
            driver.kill()
        cluster.shutdown()
    assert driver.returncode == 0, output
    used = set()
    for root in sorted((storage / "runs").glob("*")):
        finished_with(root, steps)  # exactly one run directory per trial: resumed, not restarted
        attempts = state.read_attempts(root)
        used.update(a.get("node") for a in attempts)
    assert used >= node_ids  # spread over both nodes
    attempts = state.read_attempts(victim[0])
    assert len(attempts) >= 2 and attempts[-1]["resumed"] is True, attempts
    (run_dir,) = state.run_dirs(victim[0], "tiny")
    kinds = [e["event"] for e in events(run_dir)]
    assert kinds[0] == "start" and "resume" in kinds and kinds[-1] == "end"
    assert len(list((storage / "runs").glob("*"))) == 4


@pytest.mark.slow
def test_a_stopped_sweep_resumes_and_skips_finished_runs(tmp_path: Path) -> None:
    if ray.is_initialized():
        ray.shutdown()
    steps = 128
    path = sweep_file(tmp_path, steps, "seed = [0, 1, 2]", "cpus = 1\nmax_concurrent = 1")
    storage = tmp_path / "st"
    driver = _driver(path, storage)
    try:
        runs = storage / "runs"

        def one_finished_and_another_started() -> bool:
            roots = list(runs.glob("*")) if runs.is_dir() else []
            done = [r for r in roots if state.finished_run(r, "tiny", steps)]
            started = [r for r in roots if r not in done and state.read_attempts(r)]
            return bool(done) and bool(started)

        _wait(one_finished_and_another_started, 600, "one finished trial and a started one")
        finished_before = {
            r.name: (finished_with(r, steps) / "events.jsonl").read_text()
            for r in runs.glob("*")
            if state.finished_run(r, "tiny", steps)
        }
        attempts_before = {r.name: len(state.read_attempts(r)) for r in runs.glob("*")}
        driver.send_signal(signal.SIGINT)  # Ctrl-C
        output, _ = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode != 0, output
    resumed = _driver(path, storage, "--resume")
    output, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, output
    for root in runs.glob("*"):
        run_dir = finished_with(root, steps)
        if root.name in finished_before:  # skipped: not run again
            assert (run_dir / "events.jsonl").read_text() == finished_before[root.name]
            # Tune's restored state skips it, or the trial sees its finished run and skips.
            later = state.read_attempts(root)[attempts_before[root.name] :]
            assert all("skipped" in attempt for attempt in later), later
    assert len(list(runs.glob("*"))) == 3
