"""Probes: a start-up that ends before the first step leaves no run directory behind.

An exception in a plugin's build or setup, a SIGTERM or SIGINT during start-up
(sent by the plugin itself, in a ``python -m pamiqx run`` subprocess), and a
rollout that cannot fit in memory: each ends with its exit code and a clear
message, no traceback, and no run directory (a resumed run's is unchanged).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from pamiqx.api import ActionSpec, ObservationSpec
from pamiqx.runtime.memory import check_rollout_memory, rollout_bytes
from tests.misbehaving import install_misbehaving, probe_experiment
from tests.run_inspection import flat, runs, snapshot
from tests.runtime_helpers import tiny_maze

CLI = Callable[..., tuple[int, str]]
ROOT = Path(__file__).resolve().parents[1]


# --- 4. start-up that ends before the first step leaves no run directory ------------------


@pytest.mark.parametrize(
    ("fault", "fragments"),
    [
        (
            "raise-setup",
            ["'faulty-world'", "setup()", "ValueError: the calibration file is empty"],
        ),
        ("spec-raises", ["'faulty-world'", "observation_spec", "LookupError: the camera"]),
    ],
)
def test_plugin_exception_during_start_up_leaves_no_run_directory(
    dist_root: Path, tmp_path: Path, cli: CLI, fault: str, fragments: list[str]
) -> None:
    install_misbehaving(dist_root)
    logs = tmp_path / "logs"
    path = tmp_path / "startup.toml"
    path.write_text(probe_experiment(logs, world_fault=fault, max_steps=64))
    code, out = cli("run", str(path))
    assert code == 2 and "Traceback" not in out, out
    for fragment in fragments:
        assert fragment in flat(out), (fragment, out)
    assert runs(logs, "probe") == []


def test_host_failure_during_start_up_keeps_its_traceback_but_no_run_directory(
    tmp_path: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise MemoryError("host bug")

    monkeypatch.setattr("pamiqx.runtime.session.build_components", broken)
    logs = tmp_path / "logs"
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_maze(logs))
    with pytest.raises(MemoryError):
        cli("run", str(path))
    assert runs(logs) == []


def _run_subprocess(path: Path, dist_root: Path, *args: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(dist_root), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, "-m", "pamiqx", "run", str(path), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("fault", "code", "name"),
    [
        ("sigterm-setup", 143, "SIGTERM"),
        ("sigterm-swallowed", 143, "SIGTERM"),
        ("sigint-build", 130, "SIGINT"),
    ],
)
def test_signal_during_start_up_exits_cleanly_and_leaves_no_run_directory(
    dist_root: Path, tmp_path: Path, fault: str, code: int, name: str
) -> None:
    install_misbehaving(dist_root)
    logs = tmp_path / "logs"
    path = tmp_path / "startup.toml"
    path.write_text(probe_experiment(logs, world_fault=fault, max_steps=64))
    got, out = _run_subprocess(path, dist_root)
    assert got == code and "Traceback" not in out, out
    assert f"stopped by {name} during start-up, before the first step" in flat(out)
    assert "no run directory is left" in flat(out)
    assert runs(logs, "probe") == []


@pytest.mark.timeout(300)
def test_sigterm_while_resuming_leaves_the_run_unchanged(
    dist_root: Path, tmp_path: Path, cli: CLI
) -> None:
    install_misbehaving(dist_root)
    logs = tmp_path / "logs"
    path = tmp_path / "startup.toml"
    path.write_text(probe_experiment(logs, max_steps=64))
    assert cli("run", str(path))[0] == 0
    [run_dir] = runs(logs, "probe")
    before = snapshot(logs)
    got, out = _run_subprocess(
        path, dist_root, 'environment.fault="sigterm-setup"', "--resume", "latest"
    )
    assert got == 143 and "Traceback" not in out, out
    assert f"the run directory {run_dir} is unchanged" in flat(out)
    assert snapshot(logs) == before


# --- 5. a rollout that cannot fit in memory -----------------------------------------------


def test_rollout_too_big_for_any_machine_is_refused_before_anything_is_built(
    tmp_path: Path, cli: CLI
) -> None:
    logs = tmp_path / "logs"
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_maze(logs))
    overrides = ["run.num_envs=1024", "policy.rollout_steps=1000000", "environment.size=512"]
    code, out = cli("run", str(path), *overrides)
    text = flat(out)
    assert code == 2 and "Traceback" not in out, out
    for fragment in [
        "the rollout storage cannot fit in memory",
        "policy.rollout_steps = 1,000,000",
        "run.num_envs = 1,024",
        "uint8 (512, 512, 3)",
        "GiB of memory is available here",
    ]:
        assert fragment in text, (fragment, out)
    assert runs(logs) == []


def test_rollout_estimate_is_exact_and_names_what_to_lower(
    tmp_path: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pamiqx.runtime.memory.available_host_memory", lambda: 2**30)
    logs = tmp_path / "logs"
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_maze(logs))
    code, out = cli("run", str(path), "policy.rollout_steps=65536")
    text = flat(out)
    assert code == 2 and "Traceback" not in out, out
    frames = 65537 * 2 * 32 * 32 * 3  # (T + 1) x E uint8 frames of 32 x 32 x 3
    assert f"take {frames / 2**30:.2f} GiB" in text, out
    assert "only 1.00 GiB of memory is available" in text
    assert "Lower policy.rollout_steps or run.num_envs" in text
    assert runs(logs) == []


def test_cuda_batch_that_cannot_fit_on_the_gpu_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pamiqx.runtime.memory.available_host_memory", lambda: 2**40)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**28, 2**34))
    spec, actions = ObservationSpec((84, 84, 3), "uint8", "image"), ActionSpec("discrete", (7,))
    frames, others = rollout_bytes(128, 64, spec, actions, hidden_dim=256)
    assert frames == 129 * 64 * 84 * 84 * 3 and others == 128 * 64 * (8 + 256 * 4 + 22)
    with pytest.raises(Exception, match=r"cannot fit on cuda:0.*only 0\.25 GiB of it is free"):
        check_rollout_memory(128, 64, spec, actions, torch.device("cuda:0"), 256)
    check_rollout_memory(16, 4, spec, actions, torch.device("cuda:0"), 256)  # fits: no error
