"""Probes: resume never rewrites history, and a bad checkpoint or a full disk fails cleanly.

Each probe runs ``pamiqx run`` in-process and asserts the exit code, the
message's key content, that there is no traceback, and what the run
directories and checkpoints hold afterwards: a branch from an earlier
checkpoint goes to a new run directory (with a new Aim run) and the source run
is byte for byte unchanged; a checkpoint with a valid checksum but the wrong
content is refused naming it and what is wrong, writing nothing; a full disk
during a checkpoint leaves the previous one the latest and loadable.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from pamiqx.checkpoint import list_checkpoints, load_checkpoint, read_meta
from pamiqx.cli import app
from pamiqx.tracking import read_metrics
from tests.run_inspection import events, flat, rewrite_meta, rewrite_state, runs, snapshot
from tests.runtime_helpers import tiny_maze

CLI = Callable[..., tuple[int, str]]


# --- 1. resume never rewrites history -------------------------------------------------------


def test_resume_from_an_earlier_checkpoint_branches_into_a_new_run_directory(
    tmp_path: Path, cli: CLI
) -> None:
    logs = tmp_path / "logs"
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_maze(logs, max_steps=256, checkpoint_every=64, tracking=True))
    assert cli("run", str(path))[0] == 0
    [source] = runs(logs)
    before = snapshot(source)
    source_hash = read_meta(list_checkpoints(source)[-1])["aim_run_hash"]
    source_metrics = read_metrics(logs / "aim", source_hash)
    earlier = list_checkpoints(source)[0]
    assert read_meta(earlier)["step"] == 128

    code, out = cli("run", str(path), "run.max_steps=384", "--resume", str(earlier))
    assert code == 0 and "Traceback" not in out, out
    assert snapshot(source) == before  # the source run was not written to
    [branch] = [r for r in runs(logs) if r != source]
    assert str(branch) in flat(out)
    start = events(branch)[0]
    assert start["event"] == "start" and start["step"] == 128
    origin = start["branched_from"]
    assert origin["checkpoint"] == str(earlier.resolve()) and origin["step"] == 128
    assert origin["run_dir"] == str(source.resolve()) and origin["aim_run_hash"] == source_hash
    header = (branch / "experiment.toml").read_text()
    assert (
        header.startswith("# Resolved by pamiqx")
        and f"# Branched from {earlier.resolve()}" in header
    )
    assert [read_meta(p)["step"] for p in list_checkpoints(branch)] == [256, 320, 384]
    state, meta = load_checkpoint(list_checkpoints(branch)[-1], "tiny")
    assert state["step"] == 384
    # A new Aim run; the source's series are as they were.
    assert meta["aim_run_hash"] != source_hash and start["aim_run_hash"] == meta["aim_run_hash"]
    assert read_metrics(logs / "aim", source_hash) == source_metrics
    branch_metrics = read_metrics(logs / "aim", meta["aim_run_hash"])[meta["aim_run_hash"]]
    assert min(s for s, _ in branch_metrics["coverage"]) > 128

    # `--resume latest` now continues the branch, the newest run, in place.
    code, out = cli("run", str(path), "run.max_steps=448", "--resume", "latest")
    assert code == 0, out
    assert snapshot(source) == before and len(runs(logs)) == 2
    assert [e["event"] for e in events(branch)][-3:] == ["resume", "checkpoint", "end"]
    assert read_meta(list_checkpoints(branch)[-1])["step"] == 448
    assert read_meta(list_checkpoints(branch)[-1])["aim_run_hash"] == meta["aim_run_hash"]


def test_resume_from_the_latest_checkpoint_path_continues_in_place(
    tmp_path: Path, cli: CLI
) -> None:
    logs = tmp_path / "logs"
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_maze(logs, max_steps=128, checkpoint_every=64))
    assert cli("run", str(path))[0] == 0
    [run_dir] = runs(logs)
    latest = list_checkpoints(run_dir)[-1]
    code, out = cli("run", str(path), "run.max_steps=192", "--resume", str(latest))
    assert code == 0, out
    assert runs(logs) == [run_dir]
    assert [e["event"] for e in events(run_dir)] == [
        "start", "checkpoint", "checkpoint", "end", "resume", "checkpoint", "end"
    ]  # fmt: skip
    assert [read_meta(p)["step"] for p in list_checkpoints(run_dir)] == [64, 128, 192]


def test_checkpoint_outside_a_run_directory_branches_under_the_log_root(
    tmp_path: Path, cli: CLI
) -> None:
    logs = tmp_path / "logs"
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_maze(logs, max_steps=64, checkpoint_every=64))
    assert cli("run", str(path))[0] == 0
    [run_dir] = runs(logs)
    kept = tmp_path / "kept" / "checkpoints" / "good-one"  # no run directory around it
    shutil.copytree(list_checkpoints(run_dir)[-1], kept)
    before = snapshot(tmp_path / "kept")
    code, out = cli("run", str(path), "run.max_steps=128", "--resume", str(kept))
    assert code == 0 and "Traceback" not in out, out
    assert snapshot(tmp_path / "kept") == before  # nothing written beside it
    [branch] = [r for r in runs(logs) if r != run_dir]
    origin = events(branch)[0]["branched_from"]
    assert origin == {
        "checkpoint": str(kept.resolve()),
        "step": 64,
        "run_dir": None,
        "aim_run_hash": None,
    }
    assert read_meta(list_checkpoints(branch)[-1])["step"] == 128


# --- 2. a valid checksum, the wrong content ------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Logs of a finished 128-step run with checkpoints at 64 and 128 (copied per test)."""
    logs = tmp_path_factory.mktemp("finished") / "logs"
    path = logs.parent / "tiny.toml"
    path.write_text(tiny_maze(logs, max_steps=128, checkpoint_every=64))
    result = CliRunner().invoke(app, ["run", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return logs


@pytest.fixture
def damaged(finished_run: Path, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A copy of the finished run's logs and its experiment file: (run_dir, toml)."""
    logs = tmp_path / "logs"
    shutil.copytree(finished_run, logs)
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_maze(logs, max_steps=192, checkpoint_every=64))
    [run_dir] = runs(logs)
    yield run_dir, path


def _first_policy_weight(state: dict[str, Any]) -> dict[str, Any]:
    policy = state["models"]["policy"]
    key = next(k for k, v in policy.items() if v.dim() == 2)
    policy[key] = torch.zeros(3, 3)
    return state


def _set(keys: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(state: dict[str, Any]) -> dict[str, Any]:
        target = state
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value(target[keys[-1]]) if callable(value) else value
        return state

    return change


def _without(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda state: {k: v for k, v in state.items() if k != key}


STATE_PROBES: list[tuple[str, Callable[[dict[str, Any]], Any], list[str]]] = [
    ("state-is-a-list", lambda s: [1, 2, 3], ["state.pt holds a list"]),
    ("state-without-learner", _without("learner"), ["'learner' is missing"]),
    ("step-as-a-string", _set(("step",), "128"), ["holds step '128'", "says 128"]),
    ("models-not-a-dict", _set(("models",), [1]), ["'models' is a list, not a dict"]),
    ("metric-not-a-number", _set(("first_metrics",), {"coverage": "high"}), ["first_metrics"]),
    ("policy-weight-shape", _first_policy_weight, ["models.policy", "size mismatch"]),
    (
        "rollout-frames-shape",
        _set(("collector", "rollout", "observations"), lambda t: t[:, :, :8]),
        ["collector.rollout.observations is uint8", "expected uint8"],
    ),
    (
        "recurrent-state-shape",
        _set(("collector", "agent", "hidden"), torch.zeros(5, 7)),
        ["collector.agent.hidden", "(5, 7)"],
    ),
    (
        "optimizer-moment-shape",
        _set(("learner", "optimizer", "state", 0, "exp_avg"), torch.zeros(1)),
        ["learner.optimizer.state[0].exp_avg is (1,)"],
    ),
    ("fewer-worlds", _set(("envs",), lambda e: e[:1]), ["1 world states but run.num_envs is 2"]),
    ("rng-garbage", _set(("rng", "torch"), torch.zeros(3)), ["its rng state does not fit"]),
]

META_PROBES: list[tuple[str, Callable[[dict[str, Any]], Any], list[str]]] = [
    ("meta-step-a-string", _set(("step",), "128"), ["'step' is a string ('128')"]),
    ("meta-without-experiment", _without("experiment"), ["'experiment' is missing"]),
    ("meta-not-an-object", lambda m: [m], ["holds an array, not an object"]),
    ("meta-step-of-another-folder", _set(("step",), 64), ["named for step 128"]),
    ("meta-checksum-a-number", _set(("state_sha256",), 5), ["'state_sha256' is an integer"]),
]


@pytest.mark.parametrize(
    ("change", "fragments", "is_meta"),
    [(p[1], p[2], False) for p in STATE_PROBES] + [(p[1], p[2], True) for p in META_PROBES],
    ids=[p[0] for p in STATE_PROBES + META_PROBES],
)
def test_malformed_checkpoint_is_refused_naming_it_and_nothing_is_written(
    damaged: tuple[Path, Path],
    cli: CLI,
    change: Callable[[dict[str, Any]], Any],
    fragments: list[str],
    is_meta: bool,
) -> None:
    run_dir, path = damaged
    latest = list_checkpoints(run_dir)[-1]
    (rewrite_meta if is_meta else rewrite_state)(latest, change)
    before = snapshot(run_dir.parent.parent)
    code, out = cli("run", str(path), "--resume", "latest")
    text = flat(out)
    assert code == 2 and "Traceback" not in out, out
    assert "error:" in text and str(latest) in text, out
    for fragment in fragments:
        assert fragment in text, (fragment, out)
    assert snapshot(run_dir.parent.parent) == before  # no new run directory, nothing written


def test_malformed_earlier_checkpoint_leaves_no_branch_behind(
    damaged: tuple[Path, Path], cli: CLI
) -> None:
    run_dir, path = damaged
    earlier = list_checkpoints(run_dir)[0]
    rewrite_state(earlier, _first_policy_weight)
    before = snapshot(run_dir.parent.parent)
    code, out = cli("run", str(path), "--resume", str(earlier))
    assert code == 2 and "Traceback" not in out and "size mismatch" in out, out
    assert snapshot(run_dir.parent.parent) == before and runs(run_dir.parent.parent) == [run_dir]


# --- 3. a full disk during a checkpoint ---------------------------------------------------


def _failing_second_save(monkeypatch: pytest.MonkeyPatch, fail: Callable[..., None]) -> None:
    real = torch.save
    calls = []

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            fail(real, obj, f)
        else:
            real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def _enospc(real: Any, obj: Any, f: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _iostream(real: Any, obj: Any, f: Any) -> None:
    raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 512 vs 448")


def _dev_full(real: Any, obj: Any, f: Any) -> None:
    with open("/dev/full", "wb") as full:  # the kernel's own ENOSPC
        real(obj, full)


@pytest.mark.parametrize(
    ("fail", "reason"),
    [
        (_enospc, "No space left on device"),
        (_iostream, "RuntimeError: [enforce fail at inline_container.cc:664]"),
        pytest.param(
            _dev_full,
            "No space left on device",
            marks=pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full"),
        ),
    ],
    ids=["enospc", "torch-stream-error", "dev-full"],
)
def test_full_disk_during_a_checkpoint_keeps_the_previous_one(
    tmp_path: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch, fail: Any, reason: str
) -> None:
    logs = tmp_path / "logs"
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_maze(logs, max_steps=192, checkpoint_every=64))
    _failing_second_save(monkeypatch, fail)
    code, out = cli("run", str(path))
    text = flat(out)
    assert code == 2 and "Traceback" not in out, out
    [run_dir] = runs(logs)
    [kept] = list_checkpoints(run_dir)
    assert read_meta(kept)["step"] == 64
    assert f"cannot write the checkpoint {run_dir / 'checkpoints' / 'step-000000000128'}" in text
    assert reason in text and "GiB free on that disk" in text, out
    assert f"its last good checkpoint, {kept}, is kept" in text
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))  # the unfinished copy is gone
    end = events(run_dir)[-1]
    assert end["status"] == "failed" and "cannot write the checkpoint" in end["reason"]
    monkeypatch.undo()
    code, out = cli("run", str(path), "--resume", "latest")  # the kept one still loads
    assert code == 0, out
    assert [read_meta(p)["step"] for p in list_checkpoints(run_dir)] == [64, 128, 192]
