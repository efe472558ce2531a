"""The comparison suite driver: planning, command lines, failures, and one real tiny suite."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pamiqx.compare.errors import SuiteError
from pamiqx.compare.suite import DEFAULT_JOBS, DEFAULT_SEEDS, run_suite
from pamiqx.compare.suite_plan import (
    Job,
    Plan,
    end_status,
    find_experiments,
    job_overrides,
    plan_job,
    report_command,
    run_command,
)
from pamiqx.compare.suite_pool import child_environment
from pamiqx.experiment import load_experiment, parse_override

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

# The shared settings of a tiny world, as experiments/compare/maze.toml is for the maze.
TINY_BASE = """
description = "a tiny comparison world"

[run]
max_steps = 256
device = "cpu"
checkpoint_every = 0
log_every = 128

[environment]
plugin = "sim-maze"
size = 32
rooms = 3
map_size = 11

[models.encoder]
plugin = "conv-encoder"
feature_dim = 32

[models.policy]
plugin = "actor-critic"
hidden = [32]

[policy]
rollout_steps = 128
minibatch_size = 128
epochs = 1
"""


def tiny_file(folder: Path, curiosity: str, name: str | None = None, extra: str = "") -> Path:
    """Write compare-tiny-<name>.toml over compare/tiny.toml, as the shipped files are."""
    (folder / "compare").mkdir(parents=True, exist_ok=True)
    (folder / "compare" / "tiny.toml").write_text(TINY_BASE)
    name = name or curiosity
    path = folder / f"compare-tiny-{name}.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            extends = "compare/tiny.toml"
            name = "compare-tiny-{name}"

            [curiosity]
            plugin = "{curiosity}"
            """
        )
        + extra
    )
    return path


def fake_run_dir(
    log_dir: Path,
    job: Job,
    stamp: str,
    events: list[dict[str, object]],
    checkpoint: bool = False,
    overrides: tuple[str, ...] = (),
) -> Path:
    """A run directory as pamiqx leaves it: experiment.toml, events.jsonl, checkpoints/."""
    resolved = load_experiment(job.experiment, [*job_overrides(job, log_dir, []), *overrides])
    run_dir = log_dir / resolved.experiment.name / stamp
    (run_dir / "checkpoints").mkdir(parents=True)
    if checkpoint:
        (run_dir / "checkpoints" / "step-000000000128").mkdir()
    (run_dir / "experiment.toml").write_text(resolved.to_toml())
    lines = [json.dumps({"event": "start", "step": 0}), *(json.dumps(e) for e in events)]
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
    return run_dir


def expected(job: Job, log_dir: Path) -> dict[str, object]:
    resolved = load_experiment(job.experiment, job_overrides(job, log_dir, []))
    return tomllib.loads(resolved.to_toml())


FINISHED = {"event": "end", "step": 256, "status": "finished"}
INTERRUPTED = {"event": "end", "step": 128, "status": "interrupted"}
FAILED = {"event": "end", "step": 100, "status": "failed"}


def test_finished_runs_are_skipped_stopped_ones_resume_failed_ones_rerun(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    job = Job(tiny_file(tmp_path, "none"), seed=0)
    assert plan_job(job, log_dir, expected(job, log_dir)) == Plan(job, "run")

    failed = fake_run_dir(log_dir, job, "20260101-000000", [FAILED])
    assert end_status(failed) == "failed"
    assert plan_job(job, log_dir, expected(job, log_dir)).action == "run"

    stopped = fake_run_dir(log_dir, job, "20260101-000100", [INTERRUPTED], checkpoint=True)
    assert plan_job(job, log_dir, expected(job, log_dir)) == Plan(job, "resume", stopped)

    # Killed outright after a resume: no end event, but a checkpoint to continue from.
    killed = fake_run_dir(
        log_dir, job, "20260101-000200", [INTERRUPTED, {"event": "resume"}], checkpoint=True
    )
    assert end_status(killed) is None
    assert plan_job(job, log_dir, expected(job, log_dir)) == Plan(job, "resume", killed)

    # Finished runs of another seed or other settings are not this job's.
    other_seed = Job(job.experiment, seed=1)
    fake_run_dir(log_dir, other_seed, "20260101-000300", [FINISHED])
    fake_run_dir(log_dir, job, "20260101-000400", [FINISHED], overrides=("run.max_steps=512",))
    assert plan_job(job, log_dir, expected(job, log_dir)).action == "resume"

    finished = fake_run_dir(log_dir, job, "20250101-000000", [FINISHED])  # older, still done
    with (finished / "events.jsonl").open("a") as f:
        f.write('{"event": "end", "sta')  # a line cut short is ignored
    assert plan_job(job, log_dir, expected(job, log_dir)) == Plan(job, "skip", finished)
    # The log directory itself does not count: runs moved elsewhere are still found.
    moved = tmp_path / "moved"
    (log_dir).rename(moved)
    assert plan_job(job, moved, expected(job, log_dir)).action == "skip"


def test_command_lines(tmp_path: Path) -> None:
    log_dir = tmp_path / "a dir@x" / "logs"
    job = Job(Path("experiments/compare-maze-rnd.toml"), seed=2)
    run = run_command(Plan(job, "run"), log_dir, ["run.max_steps=512"], ["pamiqx"])
    assert run == [
        "pamiqx",
        "run",
        "experiments/compare-maze-rnd.toml",
        "seed=2",
        f'run.log_dir="{log_dir}"',
        "run.max_steps=512",
    ]
    assert parse_override(run[4]) == (["run", "log_dir"], str(log_dir))  # spaces survive
    run_dir = log_dir / "compare-maze-rnd" / "20260101-000000"
    resume = run_command(Plan(job, "resume", run_dir), log_dir, [], ["python", "-m", "pamiqx"])
    assert resume[:4] == ["python", "-m", "pamiqx", "run"]
    assert resume[-2:] == ["--resume", str(run_dir)]
    report = report_command([run_dir, run_dir.parent], "logs/report", ["pamiqx"])
    assert report == [
        "pamiqx",
        "compare",
        str(run_dir),
        str(run_dir.parent),
        "--out",
        "logs/report",
    ]


def test_runs_share_the_cores_unless_told_otherwise() -> None:
    threads = str(max(1, (os.cpu_count() or 1) // 2))
    env = child_environment(2, base={"PATH": "/bin"})
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == threads
    assert env["PATH"] == "/bin" and env["PYTHONUNBUFFERED"] == "1"
    assert child_environment(2, base={"OMP_NUM_THREADS": "3"})["OMP_NUM_THREADS"] == "3"


def test_the_shipped_maze_files_are_found_and_share_one_length() -> None:
    files = find_experiments(EXPERIMENTS, "maze")
    names = [f.stem for f in files]
    assert "compare-maze-none" in names and "compare-maze-rnd" in names
    steps = {load_experiment(f).experiment.run.max_steps for f in files}
    assert len(steps) == 1
    with pytest.raises(SuiteError, match=r"compare-mars-\*\.toml.*maze, minigrid"):
        find_experiments(EXPERIMENTS, "mars")


FAKE_PAMIQX = """
import os, sys
print("fake pamiqx", *sys.argv[1:])
print("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS"))
experiment = sys.argv[2]
sys.exit(3 if "bad" in experiment else 130 if "stop" in experiment else 0)
"""


def test_failures_are_listed_after_the_other_runs_finish(tmp_path: Path) -> None:
    experiments = tmp_path / "experiments"
    tiny_file(experiments, "none")
    bad = tiny_file(experiments, "none", name="bad")
    broken = tiny_file(experiments, "none", name="broken", extra="[run]\nmax_step = 5\n")
    fake = tmp_path / "fake_pamiqx.py"
    fake.write_text(FAKE_PAMIQX)
    lines: list[str] = []
    code = run_suite(
        "tiny",
        tmp_path / "logs",
        experiments,
        seeds=[0, 1],
        report=False,
        pamiqx=[sys.executable, str(fake)],
        echo=lines.append,
    )
    assert code == 1
    text = "\n".join(lines)
    assert "6 runs" in text and "4 to run" in text
    assert text.count("done   compare-tiny-none") == 2
    logs = tmp_path / "logs" / "suite-logs"
    failed = next(line for line in lines if "FAILED compare-tiny-bad seed=1" in line)
    assert "(exit 3)" in failed and failed.endswith(f"log: {logs / 'compare-tiny-bad.seed-1.log'}")
    output = (logs / "compare-tiny-bad.seed-1.log").read_text()
    assert "fake pamiqx run" in output and "seed=1" in output
    listed = text.split("failed runs (experiment, seed, log):\n")[1].splitlines()
    assert (
        f"  compare-tiny-bad seed=0 ({bad}): exit 3, log {logs}/compare-tiny-bad.seed-0.log"
        in listed
    )
    assert any(
        line.startswith(f"  compare-tiny-broken seed=0 ({broken}): ") and "run.max_step" in line
        for line in listed
    )
    assert len(listed) == 4  # bad and broken, two seeds each


def test_a_stopped_run_stops_the_suite_for_a_later_resume(tmp_path: Path) -> None:
    experiments = tmp_path / "experiments"
    tiny_file(experiments, "none", name="stop")
    fake = tmp_path / "fake_pamiqx.py"
    fake.write_text(FAKE_PAMIQX)
    lines: list[str] = []
    code = run_suite(
        "tiny",
        tmp_path / "logs",
        experiments,
        seeds=[0],
        pamiqx=[sys.executable, str(fake)],
        echo=lines.append,
    )
    assert code == 130
    assert "run the same command again to resume" in "\n".join(lines)


def test_a_tiny_suite_runs_reports_and_resumes(tmp_path: Path) -> None:
    experiments = tmp_path / "experiments"
    tiny_file(experiments, "none")
    tiny_file(experiments, "rnd", extra="feature_dim = 32\n")
    log_dir = tmp_path / "logs"
    lines: list[str] = []
    code = run_suite(
        "tiny", log_dir, experiments, seeds=[0], out=f"{tmp_path}/report/", echo=lines.append
    )
    text = "\n".join(lines)
    assert code == 0, text
    assert "2 runs" in text and "2 to run" in text and text.count("done ") == 2
    assert {p.name for p in (tmp_path / "report").iterdir()} >= {
        "coverage.png",
        "intrinsic.png",
        "summary.md",
    }
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "rnd" in summary and "none" in summary

    again: list[str] = []
    assert run_suite("tiny", log_dir, experiments, seeds=[0], report=False, echo=again.append) == 0
    assert "2 finished already, 0 to resume, 0 to run" in again[0]
    assert sum(line.split("] ")[-1].startswith("skip") for line in again) == 2


CLI = Callable[..., tuple[int, str]]


def test_the_command_passes_every_option_and_defaults_to_the_suites(
    cli: CLI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def fake_run_suite(*args: Any, **kwargs: Any) -> int:
        calls.append((args, kwargs))
        return 130

    monkeypatch.setattr("pamiqx.compare.suite.run_suite", fake_run_suite)
    code, _ = cli(
        "compare-suite",
        "--world",
        "minigrid",
        "--dir",
        str(tmp_path),
        "--seeds",
        "0,2",
        "run.max_steps=512",
        "--experiments",
        "exps",
        "--jobs",
        "3",
        "--out",
        "report.html",
        "--no-report",
        "seed=1",
    )
    assert code == 130
    assert calls.pop() == (
        (
            "minigrid",
            tmp_path,
            Path("exps"),
            [0, 2],
            3,
            ["run.max_steps=512", "seed=1"],
            "report.html",
        ),
        {"report": False},
    )
    code, _ = cli("compare-suite")
    assert code == 130
    assert calls.pop() == (
        (
            "maze",
            Path("logs/compare"),
            Path("experiments"),
            list(DEFAULT_SEEDS),
            DEFAULT_JOBS,
            [],
            None,
        ),
        {"report": True},
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0,x"], "--seeds: expected seeds like 0,1,2, got '0,x'."),
        (["--seeds", ""], "--seeds needs at least one seed."),
        (["--jobs", "0"], "--jobs must be at least 1, got 0."),
        (["--world", "mars"], "no comparison files compare-mars-*.toml"),
    ],
)
def test_option_mistakes_are_user_errors(cli: CLI, args: list[str], message: str) -> None:
    code, output = cli("compare-suite", "--experiments", str(EXPERIMENTS), *args)
    assert code == 2
    assert "error:" in output and message in " ".join(output.split())
    assert "Traceback" not in output
