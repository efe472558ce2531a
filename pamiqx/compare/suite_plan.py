"""Planning the comparison suite: its jobs, and whether each is finished, resumable or new.

A job is one comparison file at one seed. It is finished when its log directory
holds a run of the same resolved experiment (every setting but ``run.log_dir``)
that ended ``finished``, resumable when such a run has a checkpoint, and new
otherwise. The ``pamiqx run`` and ``pamiqx compare`` command lines are built here.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from pamiqx.api.errors import PamiqxError
from pamiqx.compare.errors import SuiteError

__all__ = [
    "Action",
    "Job",
    "Plan",
    "comparable",
    "end_status",
    "find_experiments",
    "has_checkpoint",
    "job_overrides",
    "matching_runs",
    "plan_job",
    "plan_jobs",
    "report_command",
    "run_command",
]

FINISHED = "finished"  # the status of the `end` event of a completed run (events.jsonl)

Action = Literal["skip", "resume", "run", "invalid"]


@attrs.frozen
class Job:
    """One experiment file at one seed.

    Attributes:
        experiment: The experiment file.
        seed: The seed it runs with.
        name: The experiment's name (its run directories' folder); the file's
            stem until the file is resolved (the shipped files are named so).
    """

    experiment: Path
    seed: int
    name: str = attrs.field(
        default=attrs.Factory(lambda self: self.experiment.stem, takes_self=True)
    )

    @property
    def label(self) -> str:
        """``name seed=S`` for progress lines."""
        return f"{self.name} seed={self.seed}"


@attrs.frozen
class Plan:
    """What the suite does with one job.

    Attributes:
        job: The experiment and seed.
        action: ``skip`` (finished already), ``resume`` (from ``run_dir``'s
            checkpoint), ``run`` (a new run) or ``invalid`` (the file does not load).
        run_dir: The finished or resumable run directory.
        message: Why an ``invalid`` job cannot run.
        expected: The job's resolved experiment (``tomllib`` data of ``to_toml()``).
    """

    job: Job
    action: Action
    run_dir: Path | None = None
    message: str = ""
    expected: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


def find_experiments(experiments: Path, world: str) -> list[Path]:
    """Return the comparison files of a world, sorted: ``compare-<world>-*.toml``.

    Raises:
        SuiteError: There are none.
    """
    files = sorted(experiments.glob(f"compare-{world}-*.toml"))
    if not files:
        worlds = sorted({p.name.split("-")[1] for p in experiments.glob("compare-*-*.toml")})
        known = f" Worlds with comparison files: {', '.join(worlds)}." if worlds else ""
        raise SuiteError(
            f"{experiments}: no comparison files compare-{world}-*.toml for world '{world}'.{known}"
        )
    return files


def end_status(run_dir: Path) -> str | None:
    """Return the status of the last ``end`` event in ``events.jsonl`` (None: it never ended)."""
    status: str | None = None
    try:
        lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed process
        if isinstance(event, dict) and event.get("event") == "end":
            status = str(event.get("status"))
        elif isinstance(event, dict) and event.get("event") == "resume":
            status = None  # a resumed run is running again until its next end
    return status


def has_checkpoint(run_dir: Path) -> bool:
    """Return True when the run directory holds a complete checkpoint (a ``step-*`` folder)."""
    return any(p.is_dir() for p in (run_dir / "checkpoints").glob("step-*"))


def comparable(experiment: dict[str, Any]) -> dict[str, Any]:
    """Return resolved experiment data without the settings that do not change a run."""
    data = dict(experiment)
    data["run"] = {k: v for k, v in data.get("run", {}).items() if k != "log_dir"}
    return data


def matching_runs(log_dir: Path, name: str, expected: dict[str, Any]) -> list[Path]:
    """Return the run directories of ``name`` in ``log_dir`` whose experiment is ``expected``.

    Args:
        log_dir: The suite's log directory (``run.log_dir``).
        name: The experiment name.
        expected: The resolved experiment (``tomllib`` data of ``to_toml()``).

    Returns:
        Matching run directories, oldest first (their names are timestamps).
    """
    runs = []
    for run_dir in sorted((log_dir / name).glob("*/")):
        try:
            recorded = tomllib.loads((run_dir / "experiment.toml").read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if comparable(recorded) == comparable(expected):
            runs.append(run_dir)
    return runs


def plan_job(job: Job, log_dir: Path, expected: dict[str, Any]) -> Plan:
    """Decide whether a job is finished, can resume or must run.

    Args:
        job: The experiment and seed.
        log_dir: The suite's log directory.
        expected: The job's resolved experiment (``tomllib`` data of ``to_toml()``).

    Returns:
        ``skip`` with the newest finished run, else ``resume`` from the newest
        unfinished run with a checkpoint, else ``run``.
    """
    runs = matching_runs(log_dir, job.name, expected)
    for run_dir in reversed(runs):
        if end_status(run_dir) == FINISHED:
            return Plan(job, "skip", run_dir, expected=expected)
    for run_dir in reversed(runs):
        if has_checkpoint(run_dir):
            return Plan(job, "resume", run_dir, expected=expected)
    return Plan(job, "run", expected=expected)


def job_overrides(job: Job, log_dir: Path, overrides: Sequence[str]) -> list[str]:
    """Return the ``KEY=VALUE`` overrides of a job: its seed, the log directory, then the user's."""
    # A TOML string, so that any path (spaces, '@') reads back as written.
    return [f"seed={job.seed}", f"run.log_dir={json.dumps(str(log_dir))}", *overrides]


def run_command(
    plan: Plan, log_dir: Path, overrides: Sequence[str], pamiqx: Sequence[str]
) -> list[str]:
    """Return the ``pamiqx run`` command line of a planned job.

    Args:
        plan: A ``run`` or ``resume`` plan.
        log_dir: The suite's log directory.
        overrides: The user's extra ``KEY=VALUE`` overrides.
        pamiqx: How to call pamiqx, e.g. ``[sys.executable, "-m", "pamiqx"]``.
    """
    job = plan.job
    command = [*pamiqx, "run", str(job.experiment), *job_overrides(job, log_dir, overrides)]
    if plan.action == "resume":
        command += ["--resume", str(plan.run_dir)]
    return command


def report_command(run_dirs: Sequence[Path], out: str, pamiqx: Sequence[str]) -> list[str]:
    """Return the ``pamiqx compare`` command line over the suite's finished runs."""
    return [*pamiqx, "compare", *(str(p) for p in run_dirs), "--out", out]


def plan_jobs(
    files: Sequence[Path], seeds: Sequence[int], log_dir: Path, overrides: Sequence[str]
) -> list[Plan]:
    """Resolve and plan every file at every seed, seed by seed (seed 0 completes first).

    Args:
        files: The comparison files.
        seeds: Seeds of every file.
        log_dir: The suite's log directory.
        overrides: The user's extra ``KEY=VALUE`` overrides.

    Returns:
        One plan per file and seed; ``invalid`` for a file that does not load.
    """
    from pamiqx.experiment import load_experiment
    from pamiqx.plugins.manager import load_plugins

    manager = load_plugins()
    plans = []
    for seed in seeds:
        for path in files:
            job = Job(path, seed)
            try:
                resolved = load_experiment(path, job_overrides(job, log_dir, overrides), manager)
            except PamiqxError as error:
                plans.append(Plan(job, "invalid", message=str(error)))
                continue
            job = Job(path, seed, resolved.experiment.name)
            plans.append(plan_job(job, log_dir, tomllib.loads(resolved.to_toml())))
    return plans
