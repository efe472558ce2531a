"""Run directories on disk: finding them, and reading their experiment, events and checkpoints.

A run directory ``<log_dir>/<name>/<timestamp>/`` holds ``experiment.toml`` (the
resolved experiment), ``events.jsonl`` (start, checkpoint, resume, end) and
``checkpoints/step-*/meta.json``. The ``start`` event names the Aim repository
and run of its metrics; checkpoints name the run too, which also covers runs
written before the start event did, and a resumed run whose Aim run had vanished
(its series continue in a new Aim run).

Nothing here imports torch: ``pamiqx.checkpoint`` does, so the few bits of its
layout needed here (folder names, ``meta.json``) are read directly.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from pamiqx.compare.errors import CompareError

__all__ = [
    "RUN_FILES",
    "RunFiles",
    "end_reason",
    "event_rate",
    "find_run_dirs",
    "is_run_dir",
    "read_run_files",
    "run_status",
    "start_time",
]

RUN_FILES = ("experiment.toml", "events.jsonl")
# Folders that never hold run directories: walking an Aim repository or the
# checkpoints of every run would only cost time.
_SKIP_DIRS = {".aim", "checkpoints", "__pycache__", ".git"}
_EVENT_TIME = "%Y-%m-%dT%H:%M:%S"


@attrs.frozen
class RunFiles:
    """What a run directory itself says (the metrics are read afterwards).

    Attributes:
        path: The run directory.
        experiment: The resolved experiment (``experiment.toml``).
        events: The readable events of ``events.jsonl``, in file order.
        run_hashes: The Aim runs its start events and checkpoints name, oldest first.
        recorded_repo: The Aim repository its last start event names, if any.
    """

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


def read_run_files(run_dir: Path) -> RunFiles:
    """Read a run directory's experiment, events and the Aim runs it names.

    Args:
        run_dir: A run directory.

    Returns:
        Its files' contents; events and checkpoints that cannot be read are skipped.

    Raises:
        CompareError: ``experiment.toml`` or ``events.jsonl`` cannot be read.
    """
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
    return RunFiles(run_dir, experiment, events, hashes, recorded_repo)


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


def run_status(events: Sequence[Mapping[str, Any]]) -> str:
    """Return the status of the last ``end`` event, or ``running`` when a session has not ended.

    Args:
        events: The run's events in file order.
    """
    status = "running"
    for event in events:
        kind = event.get("event")
        if kind in ("start", "resume"):
            status = "running"
        elif kind == "end":
            status = str(event.get("status", "finished"))
    return status


def end_reason(events: Sequence[Mapping[str, Any]]) -> str | None:
    """Return the reason of the last ``end`` event (why a run failed), if it gives one.

    Args:
        events: The run's events in file order.
    """
    reason: str | None = None
    for event in events:
        kind = event.get("event")
        if kind in ("start", "resume"):
            reason = None
        elif kind == "end":
            reason = event.get("reason") or None
    return None if reason is None else str(reason)


def start_time(events: Sequence[Mapping[str, Any]]) -> str:
    """Return the time of the first ``start`` event (``YYYY-mm-ddTHH:MM:SS``), or "".

    Args:
        events: The run's events in file order.
    """
    for event in events:
        if event.get("event") == "start":
            return str(event.get("time", ""))
    return ""


def event_rate(events: Sequence[Mapping[str, Any]]) -> float | None:
    """Steps per second of wall time over a run's sessions, from its event times.

    A session runs from a ``start`` or ``resume`` event to the last event before
    the next one (``end``, or a ``checkpoint`` of a session still going on). The
    times have one-second resolution and include set-up and checkpointing, so
    this is a rough figure, used only when a run has no
    :data:`~pamiqx.compare.runs.RATE` metric.

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
