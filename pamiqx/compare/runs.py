"""Finding run directories and reading what a comparison needs from them.

A run directory ``<log_dir>/<name>/<timestamp>/`` holds ``experiment.toml`` (the
resolved experiment), ``events.jsonl`` (start, checkpoint, resume, end) and
``checkpoints/step-*/meta.json``. Its metrics live in an Aim repository: the
``start`` event names the repository and the Aim run; checkpoints name the run
too, which also covers runs written before the start event did, and a resumed
run whose Aim run had vanished (its series continue in a new Aim run).

Nothing here imports torch: ``pamiqx.checkpoint`` does, so the few bits of its
layout needed here (folder names, ``meta.json``) are read directly.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from pamiqx.api.errors import PamiqxError

__all__ = [
    "COVERAGE",
    "INTRINSIC",
    "RATE",
    "CompareError",
    "RunRecord",
    "event_rate",
    "find_run_dirs",
    "load_runs",
]

#: Fraction of floor cells visited (sim-maze's evaluation metric).
COVERAGE = "coverage"
#: Raw intrinsic reward, mean over a rollout.
INTRINSIC = "reward/intrinsic"
#: Environment steps per second of wall time over a lock-step training phase.
RATE = "perf/steps_per_second"

#: (step, value) pairs in step order.
Series = tuple[tuple[int, float], ...]

RUN_FILES = ("experiment.toml", "events.jsonl")
# Folders that never hold run directories: walking an Aim repository or the
# checkpoints of every run would only cost time.
_SKIP_DIRS = {".aim", "checkpoints", "__pycache__", ".git"}
_EVENT_TIME = "%Y-%m-%dT%H:%M:%S"
# Settings that may differ between the seeds of one comparison group.
_SEED_SETTINGS = {
    "name",
    "seed",
    "description",
    "run.max_steps",
    "run.device",
    "run.checkpoint_every",
    "run.keep_checkpoints",
    "run.log_every",
    "run.log_dir",
}


class CompareError(PamiqxError):
    """Runs cannot be compared: no runs, no metrics, an unsupported output."""


@attrs.frozen
class RunRecord:
    """One run as a comparison sees it.

    Attributes:
        path: The run directory.
        name: Experiment name.
        seed: Experiment seed.
        curiosity: Curiosity plugin name (without a ``distribution:`` prefix).
        environment: Environment plugin name (without a ``distribution:`` prefix).
        status: Status of the last ``end`` event, or ``running`` when the last
            session has not ended (a run that is going on, or was killed).
        metrics: Metric name -> (step, value) series in step order.
        settings: The resolved experiment as dotted key -> value, for spotting
            runs that differ in more than their seed.
        event_rate: Steps per second between the run's start/resume and end
            events, for runs without :data:`RATE` (real-time worlds); None when
            the events do not tell.
    """

    path: Path
    name: str
    seed: int
    curiosity: str
    environment: str
    status: str
    metrics: Mapping[str, Series] = attrs.field(factory=dict)
    settings: Mapping[str, Any] = attrs.field(factory=dict)
    event_rate: float | None = None

    def series(self, metric: str) -> Series:
        """Return the series of ``metric`` (empty when the run did not track it).

        Args:
            metric: Metric name, e.g. :data:`COVERAGE`.

        Returns:
            (step, value) pairs in step order.
        """
        return tuple(self.metrics.get(metric, ()))


@attrs.frozen
class _RunFiles:
    """What a run directory itself says (the metrics are read afterwards)."""

    path: Path
    experiment: dict[str, Any]
    events: list[dict[str, Any]]
    run_hashes: list[str]
    recorded_repo: str | None


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run directory (holds experiment.toml and events.jsonl).

    Args:
        path: A folder.

    Returns:
        True for a run directory.
    """
    return all((path / name).is_file() for name in RUN_FILES)


def find_run_dirs(paths: Sequence[Path]) -> list[tuple[Path, bool]]:
    """Expand the command's paths into run directories.

    Args:
        paths: Run directories, or folders searched (recursively) for them.

    Returns:
        (run directory, named explicitly) pairs in the order given, then in name
        order below each folder; each directory once.

    Raises:
        CompareError: A path does not exist, or a folder holds no run directory.
    """
    found: dict[Path, bool] = {}
    for path in paths:
        if not path.exists():
            raise CompareError(f"{path} does not exist: give run directories or folders of them.")
        if is_run_dir(path):
            found[path.resolve()] = True
            continue
        below = _search(path) if path.is_dir() else []
        if not below:
            raise CompareError(
                f"No runs in {path}: a run directory holds {' and '.join(RUN_FILES)} "
                "(pamiqx run writes them to <log_dir>/<experiment name>/<timestamp>/)."
            )
        for run_dir in below:
            found.setdefault(run_dir.resolve(), False)
    return list(found.items())


def _search(root: Path) -> list[Path]:
    """Run directories below ``root``, without descending into a run or an Aim repository."""
    runs: list[Path] = []
    for folder, dirs, _ in os.walk(root):
        here = Path(folder)
        if is_run_dir(here):
            runs.append(here)
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
    return sorted(runs)


def load_runs(
    paths: Sequence[Path],
    repo: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[RunRecord]:
    """Load the runs at ``paths`` with their metrics.

    A run named explicitly that has no metrics is an error; one found by
    searching a folder is skipped with a warning (a folder of runs often holds
    one that failed before it logged anything).

    Args:
        paths: Run directories, or folders searched for them.
        repo: Read every run from this Aim repository instead of the one it recorded.
        warn: Called with a message for each run that is skipped.

    Returns:
        The runs, in the order found.

    Raises:
        CompareError: No runs, an unreadable run directory, a run without
            metrics, or no run left to compare.
        PamiqxError: The Aim repository cannot be read.
    """
    records: list[RunRecord] = []
    for run_dir, explicit in find_run_dirs(paths):
        try:
            records.append(_load_run(run_dir, repo))
        except CompareError as error:
            if explicit or warn is None:
                raise
            warn(f"skipped: {error}")
    if not records:
        named = ", ".join(str(p) for p in paths)
        raise CompareError(f"No run with metrics in {named}; nothing to compare.")
    return records


def _load_run(run_dir: Path, repo: Path | None) -> RunRecord:
    files = _read_run_files(run_dir)
    exp = files.experiment
    if not files.run_hashes:
        tracking = exp.get("tracking", {})
        why = (
            "it ran with tracking.enabled = false"
            if isinstance(tracking, dict) and tracking.get("enabled") is False
            else "neither its start event nor a checkpoint names an Aim run"
        )
        raise CompareError(f"The run {run_dir} has no metrics: {why}.")
    aim_repo = repo if repo is not None else _find_repo(files)
    metrics, found = _read_series(aim_repo, files.run_hashes)
    if not found:
        raise CompareError(
            f"The run {run_dir} has no metrics: the Aim repository {aim_repo} does not "
            f"hold its Aim run {' or '.join(files.run_hashes)}. Pass --repo with the "
            "repository its metrics went to."
        )
    if COVERAGE not in metrics and INTRINSIC not in metrics:
        raise CompareError(
            f"The run {run_dir} has no metrics to compare: its Aim run in {aim_repo} has "
            f"no '{COVERAGE}' or '{INTRINSIC}' series yet (a run logs its first metrics "
            "after its first rollout)."
        )
    return RunRecord(
        path=run_dir,
        name=str(exp.get("name", run_dir.parent.name)),
        seed=int(exp.get("seed", 0)),
        curiosity=_plugin_name(exp, "curiosity", "none"),
        environment=_plugin_name(exp, "environment", "?"),
        status=_status(files.events),
        metrics=metrics,
        settings=_flatten(exp),
        event_rate=event_rate(files.events),
    )


def _read_run_files(run_dir: Path) -> _RunFiles:
    experiment_file = run_dir / "experiment.toml"
    try:
        experiment = tomllib.loads(experiment_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise CompareError(f"Cannot read {experiment_file}: {error}.") from None
    try:
        lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise CompareError(f"Cannot read {run_dir / 'events.jsonl'}: {error}.") from None
    events: list[dict[str, Any]] = []
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a run being written may end in half a line
        if isinstance(event, dict):
            events.append(event)
    hashes: list[str] = []
    recorded_repo: str | None = None
    for event in events:
        if event.get("event") == "start":
            recorded_repo = event.get("aim_repo") or recorded_repo
            _add_hash(hashes, event.get("aim_run_hash"))
    for meta in _checkpoint_metas(run_dir):
        _add_hash(hashes, meta.get("aim_run_hash"))
    return _RunFiles(run_dir, experiment, events, hashes, recorded_repo)


def _add_hash(hashes: list[str], value: Any) -> None:
    if isinstance(value, str) and value and value not in hashes:
        hashes.append(value)


def _checkpoint_metas(run_dir: Path) -> list[dict[str, Any]]:
    """``meta.json`` of each checkpoint, oldest first (unreadable ones skipped)."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    steps: list[tuple[int, Path]] = []
    for path in folder.iterdir():
        # Layout of pamiqx.checkpoint: step-<zero-padded step>/meta.json.
        if path.name.startswith("step-") and path.name[5:].isdigit():
            steps.append((int(path.name[5:]), path / "meta.json"))
    metas: list[dict[str, Any]] = []
    for _, meta_file in sorted(steps):
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            metas.append(meta)
    return metas


def _find_repo(files: _RunFiles) -> Path:
    """The Aim repository of a run: the recorded one, else where the runtime puts it.

    A logs folder that was moved or copied keeps ``aim`` next to the experiment
    folders, so ``<run_dir>/../../aim`` is tried when the recorded path is gone.
    """
    candidates: list[Path] = []
    if files.recorded_repo:
        candidates.append(Path(files.recorded_repo))
    tracking = files.experiment.get("tracking", {})
    if isinstance(tracking, dict) and tracking.get("repo"):
        candidates.append(Path(str(tracking["repo"])).expanduser())
    candidates.append(files.path.parent.parent / "aim")
    for candidate in candidates:
        if (candidate / ".aim").is_dir():
            return candidate
    tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise CompareError(
        f"No Aim repository found for the run {files.path} (tried {tried}). "
        "Pass --repo with the folder of the repository its metrics went to."
    )


def _read_series(repo: Path, run_hashes: Iterable[str]) -> tuple[dict[str, Series], bool]:
    """The Aim runs' series merged by step, and whether the repository holds any of them.

    A later Aim run wins where two logged the same step.
    """
    from pamiqx.tracking import read_metrics

    merged: dict[str, dict[int, float]] = {}
    found = False
    for run_hash in run_hashes:
        runs = read_metrics(repo, run_hash)
        found = found or run_hash in runs
        for name, points in runs.get(run_hash, {}).items():
            merged.setdefault(name, {}).update(points)
    return {name: tuple(sorted(points.items())) for name, points in merged.items()}, found


def _plugin_name(experiment: Mapping[str, Any], section: str, default: str) -> str:
    table = experiment.get(section, {})
    written = str(table.get("plugin", default)) if isinstance(table, dict) else default
    # "distribution:name" picks among same-named plugins; the name is what readers know.
    return written.rsplit(":", 1)[-1]


def _status(events: Sequence[Mapping[str, Any]]) -> str:
    status = "running"
    for event in events:
        kind = event.get("event")
        if kind in ("start", "resume"):
            status = "running"
        elif kind == "end":
            status = str(event.get("status", "finished"))
    return status


def event_rate(events: Sequence[Mapping[str, Any]]) -> float | None:
    """Steps per second of wall time over a run's sessions, from its event times.

    A session runs from a ``start`` or ``resume`` event to the last event before
    the next one (``end``, or a ``checkpoint`` of a session still going on). The
    times have one-second resolution and include set-up and checkpointing, so
    this is a rough figure, used only when a run has no :data:`RATE` metric.

    Args:
        events: The run's events in file order.

    Returns:
        Steps per second, or None when no session lasted a second.
    """
    steps = 0
    seconds = 0.0
    first: tuple[datetime, int] | None = None
    last: tuple[datetime, int] | None = None
    for event in [*events, {"event": "start"}]:  # the sentinel closes the last session
        kind = event.get("event")
        if kind in ("start", "resume"):
            if first is not None and last is not None:
                steps += last[1] - first[1]
                seconds += (last[0] - first[0]).total_seconds()
            first = last = _time_and_step(event)
        elif kind in ("checkpoint", "end") and first is not None:
            last = _time_and_step(event) or last
    if seconds <= 0:
        return None
    return steps / seconds


def _time_and_step(event: Mapping[str, Any]) -> tuple[datetime, int] | None:
    try:
        return datetime.strptime(str(event["time"]), _EVENT_TIME), int(event["step"])
    except (KeyError, TypeError, ValueError):
        return None


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys, without the settings seeds may differ in."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{dotted}."))
        elif dotted not in _SEED_SETTINGS and not dotted.startswith("tracking."):
            flat[dotted] = value
    return flat
