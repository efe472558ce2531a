"""Probes of `pamiqx compare` on damaged, failed, duplicate and moved runs.

Each probe damages a copy of a small logs folder (four runs with real Aim
series, written as the runtime writes them) the way a user's disk might, then
checks what `pamiqx compare` says: the exit code, a message that names the run
and the repository, no traceback, and that the good runs are still compared.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pamiqx.cli import app
from pamiqx.compare import GroupSummary, load_runs, summarize
from tests.test_compare import NONE, RND, _write_run

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*declarative_base:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def base_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two rnd and two baseline runs, all finished, in one Aim repository."""
    from aim.sdk.repo import Repo

    root = tmp_path_factory.mktemp("probes") / "logs"
    Repo.from_path(str(root / "aim"), init=True).close()
    for seed in (0, 1):
        _write_run(root, "rnd", seed, RND[seed])
        _write_run(root, "none", seed, NONE[seed])
    return root


@pytest.fixture
def logs(base_logs: Path, tmp_path: Path) -> Path:
    """A copy of the logs folder to damage (its runs read from the copy's repository)."""
    copy = tmp_path / "logs"
    shutil.copytree(base_logs, copy)
    return copy


def _invoke(*args: str) -> tuple[int, str]:
    """Run the CLI; return the exit code and its output with line wrapping undone."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"}, catch_exceptions=False)
    return result.exit_code, " ".join(result.output.split())


def _run_dir(logs: Path, curiosity: str, seed: int) -> Path:
    for run_dir in sorted((logs / f"cmp-{curiosity}").iterdir()):
        if tomllib.loads((run_dir / "experiment.toml").read_text())["seed"] == seed:
            return run_dir
    raise AssertionError(f"no {curiosity} run of seed {seed} in {logs}")


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def _write_events(run_dir: Path, events: list[dict[str, Any]]) -> None:
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def _aim_hash(run_dir: Path) -> str:
    return str(next(e for e in _events(run_dir) if e["event"] == "start")["aim_run_hash"])


def _garble(folder: Path) -> None:
    """Overwrite every file of a rocksdb folder with bytes that are no rocksdb file."""
    for path in folder.iterdir():
        path.write_bytes(b"garbage" * 8)


def _truncate(folder: Path) -> None:
    """Cut every table file short, as a full disk would."""
    for path in folder.glob("*.sst"):
        path.write_bytes(path.read_bytes()[:100])


def _groups(logs: Path) -> tuple[dict[str, GroupSummary], list[str]]:
    warnings: list[str] = []
    groups = summarize(load_runs([logs], warn=warnings.append))
    return {g.key: g for g in groups}, warnings


def _assert_clean(out: str) -> None:
    assert "Traceback" not in out, out
    assert "SELECT" not in out, out  # no SQL statement from aim's sqlite queries


Damage = Callable[[Path, str], None]

DAMAGE: dict[str, Damage] = {
    "metric series garbled": lambda aim, h: _garble(aim / ".aim" / "seqs" / "chunks" / h),
    "run metadata garbled": lambda aim, h: _garble(aim / ".aim" / "meta" / "chunks" / h),
    "run metadata truncated": lambda aim, h: _truncate(aim / ".aim" / "meta" / "chunks" / h),
    "metric series truncated": lambda aim, h: _truncate(aim / ".aim" / "seqs" / "chunks" / h),
}


# --- damaged Aim files ---------------------------------------------------------------


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_run_in_a_folder_is_skipped_naming_run_and_repository(
    damage: str, logs: Path, tmp_path: Path
) -> None:
    bad = _run_dir(logs, "rnd", 1)
    DAMAGE[damage](logs / "aim", _aim_hash(bad))
    page = tmp_path / "report.html"
    code, out = _invoke("compare", str(logs), "--out", str(page))
    assert code == 0, out
    _assert_clean(out)
    assert f"skipped: the run {bad}" in out
    assert f"The Aim run {_aim_hash(bad)} in the repository {logs / 'aim'} cannot be read" in out
    # The good runs are still compared and reported.
    html = page.read_text()
    assert "<td>rnd</td><td>1</td>" in html and "<td>none</td><td>2</td>" in html
    groups, warnings = _groups(logs)
    assert (groups["rnd"].seeds, groups["none"].seeds) == (1, 2)
    assert len(warnings) == 1 and str(bad) in warnings[0]


def test_damaged_run_named_explicitly_is_skipped_and_the_rest_compared(logs: Path) -> None:
    bad = _run_dir(logs, "none", 0)
    DAMAGE["metric series garbled"](logs / "aim", _aim_hash(bad))
    runs = [str(_run_dir(logs, c, s)) for c in ("rnd", "none") for s in (0, 1)]
    code, out = _invoke("compare", *runs)
    assert code == 0, out
    _assert_clean(out)
    assert f"skipped: the run {bad}" in out and str(logs / "aim") in out
    assert "Curiosity comparison (3 runs)" in out


def test_only_run_damaged_is_exit_2_naming_run_and_repository(logs: Path) -> None:
    bad = _run_dir(logs, "rnd", 0)
    DAMAGE["run metadata garbled"](logs / "aim", _aim_hash(bad))
    code, out = _invoke("compare", str(bad))
    assert code == 2, out
    _assert_clean(out)
    assert f"error: Nothing to compare in {bad}: skipped the run {bad}" in out
    assert f"in the repository {logs / 'aim'} cannot be read" in out


def test_damaged_sqlite_file_costs_no_metrics(logs: Path) -> None:
    # aim's run queries go through run_metadata.sqlite; the series do not need it.
    (logs / "aim" / ".aim" / "run_metadata.sqlite").write_bytes(b"garbage" * 100)
    code, out = _invoke("compare", str(logs))
    assert code == 0, out
    _assert_clean(out)
    assert "skipped" not in out and "Curiosity comparison (4 runs)" in out
    groups, warnings = _groups(logs)
    assert (groups["rnd"].seeds, groups["none"].seeds, warnings) == (2, 2, [])


def test_damaged_index_blames_the_repository_not_each_run(base_logs: Path, tmp_path: Path) -> None:
    # The index (.aim/meta/index) is written when runs are first read; read a copy in
    # another path (aim keeps repositories open per path), then damage a copy of that.
    indexed = tmp_path / "indexed"
    shutil.copytree(base_logs, indexed)
    load_runs([indexed])
    logs = tmp_path / "logs"
    shutil.copytree(indexed, logs)
    _garble(logs / "aim" / ".aim" / "meta" / "index")
    code, out = _invoke("compare", str(logs))
    assert code == 2, out
    _assert_clean(out)
    repo = logs / "aim"
    assert f"Cannot read the Aim repository at {repo}: its index (.aim/meta/index)" in out
    assert f"aim storage --repo {repo} reindex" in out
    # Every run is named once; the repository's message is given once.
    for curiosity in ("rnd", "none"):
        assert f"skipped: the run {_run_dir(logs, curiosity, 0)}" in out
    assert out.count("its index (.aim/meta/index) is damaged") == 1
    assert "error: No run with metrics" in out and "4 runs skipped" in out


@pytest.mark.parametrize("name", ["experiment.toml", "events.jsonl"])
def test_unreadable_run_file_in_a_folder_is_skipped_naming_it(name: str, logs: Path) -> None:
    bad = _run_dir(logs, "none", 1)
    (bad / name).write_bytes(b"\xff\xfe not text \x00")
    code, out = _invoke("compare", str(logs))
    assert code == 0, out
    _assert_clean(out)
    assert f"skipped: Cannot read {bad / name}" in out
    assert "Curiosity comparison (3 runs)" in out


def test_read_metrics_names_the_damaged_run_and_reads_the_others(logs: Path) -> None:
    from pamiqx.tracking import AimRunUnreadable, read_metrics

    bad, good = _aim_hash(_run_dir(logs, "rnd", 0)), _aim_hash(_run_dir(logs, "rnd", 1))
    DAMAGE["metric series garbled"](logs / "aim", bad)
    assert read_metrics(logs / "aim", good)[good]["coverage"][0] == (1000, 0.1)
    with pytest.raises(AimRunUnreadable, match=f"The Aim run {bad} in the repository") as caught:
        read_metrics(logs / "aim")
    assert (caught.value.run_hash, caught.value.repo) == (bad, logs / "aim")


# --- failed, unfinished and duplicate runs --------------------------------------------


def test_failed_run_is_left_out_and_listed_with_its_reason(logs: Path, tmp_path: Path) -> None:
    failed = _run_dir(logs, "rnd", 1)
    events = _events(failed)
    events[-1].update(status="failed", reason="PluginFault: rewards() returned nan\nat step 4,000")
    _write_events(failed, events)
    out_dir = tmp_path / "report"
    code, out = _invoke("compare", str(logs), "--out", f"{out_dir}/")
    assert code == 0, out
    _assert_clean(out)
    assert "Curiosity comparison (3 runs, 1 left out)" in out
    line = f"{failed} (rnd, seed 1): failed: PluginFault: rewards() returned nan at step 4,000"
    assert line in out
    summary = (out_dir / "summary.md").read_text()
    assert "## Left out of the statistics" in summary and f"`{failed}`" in summary
    groups, _ = _groups(logs)
    assert groups["rnd"].seeds == 1 and groups["rnd"].final_coverage == pytest.approx((0.8,))
    [left] = groups["rnd"].left_out
    assert left.run.path == failed


def test_run_without_an_end_is_left_out(logs: Path) -> None:
    running = _run_dir(logs, "none", 1)
    _write_events(running, [e for e in _events(running) if e["event"] != "end"])
    code, out = _invoke("compare", str(logs))
    assert code == 0, out
    assert f"{running} (none, seed 1): has not ended (still running, or killed)" in out
    groups, _ = _groups(logs)
    assert groups["none"].seeds == 1


def test_duplicate_runs_keep_the_furthest_then_the_latest(logs: Path, tmp_path: Path) -> None:
    original = _run_dir(logs, "rnd", 0)
    # A second run of the same experiment and seed that stopped earlier...
    shorter = _write_run(logs, "rnd", 0, {1000: {"coverage": 0.9, "reward/intrinsic": 1.0}})
    # ...and a copy of the first one started later: it is kept.
    later = original.parent / "29990101-000000"
    shutil.copytree(original, later)
    events = _events(later)
    events[0]["time"] = "2999-01-01T00:00:00"
    _write_events(later, events)
    page = tmp_path / "report.html"
    code, out = _invoke("compare", str(logs), "--out", str(page))
    assert code == 0, out
    _assert_clean(out)
    assert "Curiosity comparison (4 runs, 2 left out)" in out
    for dropped in (original, shorter):
        assert f"{dropped} (rnd, seed 0): a duplicate of {later} (same experiment 'cmp-rnd'" in out
    html = page.read_text()
    assert "Left out of the statistics" in html and str(shorter) in html
    groups, _ = _groups(logs)
    assert [run.path for run in groups["rnd"].runs] == [_run_dir(logs, "rnd", 1), later]
    assert {item.run.path for item in groups["rnd"].left_out} == {original, shorter}


def test_every_run_left_out_is_exit_2_listing_them(logs: Path) -> None:
    failed = _run_dir(logs, "none", 0)
    events = _events(failed)
    events[-1].update(status="failed", reason="EnvironmentUnavailableError: no display")
    _write_events(failed, events)
    code, out = _invoke("compare", str(failed))
    assert code == 2, out
    _assert_clean(out)
    assert "error: Nothing to compare: all 1 run(s) are left out of the statistics" in out
    assert f"({failed}: failed: EnvironmentUnavailableError: no display)" in out
    assert "--resume RUN_DIR" in out


# --- moved and copied logs ------------------------------------------------------------


def test_moved_and_copied_logs_are_read_from_their_own_repository(tmp_path: Path) -> None:
    from aim.sdk.repo import Repo

    first = tmp_path / "first" / "logs"
    Repo.from_path(str(first / "aim"), init=True).close()
    _write_run(first, "rnd", 0, RND[0])
    _write_run(first, "none", 0, NONE[0])
    # Moved: the repository recorded in events.jsonl no longer exists.
    moved = tmp_path / "moved" / "logs"
    moved.parent.mkdir()
    shutil.move(first, moved)
    assert not (first / "aim").exists()
    code, out = _invoke("compare", str(moved))
    assert code == 0, out
    _assert_clean(out)
    assert "skipped" not in out and "Curiosity comparison (2 runs)" in out
    # Copied: the recorded repository exists but is damaged; the copy's own is read.
    copied = tmp_path / "copied" / "logs"
    shutil.copytree(moved, copied)
    shutil.move(moved, first)
    for run_dir in (_run_dir(first, "rnd", 0), _run_dir(first, "none", 0)):
        _garble(first / "aim" / ".aim" / "seqs" / "chunks" / _aim_hash(run_dir))
    code, out = _invoke("compare", str(copied))
    assert code == 0, out
    assert "skipped" not in out and "Curiosity comparison (2 runs)" in out
    groups, warnings = _groups(copied)
    assert warnings == [] and {g.key: g.seeds for g in groups.values()} == {"rnd": 1, "none": 1}


def test_damaged_run_read_in_a_fresh_process_prints_no_traceback(logs: Path) -> None:
    """The command as a user runs it: one process, aim's loggers and exit hooks included."""
    bad = _run_dir(logs, "rnd", 0)
    DAMAGE["run metadata garbled"](logs / "aim", _aim_hash(bad))
    (logs / "aim" / ".aim" / "run_metadata.sqlite").write_bytes(b"garbage" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "pamiqx", "compare", str(logs)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"},
    )
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 0, out
    _assert_clean(out)
    assert "Exception ignored" not in out
    assert f"skipped: the run {bad}" in out and "Curiosity comparison (3 runs)" in out
