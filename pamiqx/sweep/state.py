"""What a trial's folder holds: its run directories, attempts and final result.

A trial's folder ``<storage>/runs/<trial>/`` is the ``run.log_dir`` of its run:
``<name>/<timestamp>/`` are pamiqx run directories, ``trial.log`` the output of
every attempt, ``attempts.jsonl`` one line per attempt (node, process, whether
it resumed) and ``result.json`` the last metrics of the finished run. Only
files are read here (no torch): the events and checkpoint folders that
:mod:`pamiqx.checkpoint` writes.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

__all__ = [
    "ATTEMPTS",
    "RESULT",
    "TRIAL_LOG",
    "append_attempt",
    "end_event",
    "finished_run",
    "has_checkpoint",
    "read_attempts",
    "read_result",
    "remove_unresumable",
    "run_dirs",
    "write_result",
]

TRIAL_LOG = "trial.log"
ATTEMPTS = "attempts.jsonl"
RESULT = "result.json"


def run_dirs(log_root: Path, name: str) -> list[Path]:
    """Return the trial's run directories, oldest first."""
    base = log_root / name
    return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def _events(run_dir: Path) -> list[dict[str, Any]]:
    try:
        lines = (run_dir / "events.jsonl").read_text().splitlines()
    except OSError:
        return []
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut short by a lost node
        if isinstance(event, dict):
            events.append(event)
    return events


def end_event(run_dir: Path) -> dict[str, Any] | None:
    """Return the run's last ``end`` event, or None when it never ended (or was resumed since)."""
    last = None
    for event in _events(run_dir):
        if event.get("event") in ("start", "resume"):
            last = None
        elif event.get("event") == "end":
            last = event
    return last


def finished_run(log_root: Path, name: str, max_steps: int) -> Path | None:
    """Return the run directory that finished all ``max_steps`` steps, if any."""
    for run_dir in reversed(run_dirs(log_root, name)):
        end = end_event(run_dir)
        if end and end.get("status") == "finished" and int(end.get("step", -1)) >= max_steps:
            return run_dir
    return None


def _checkpoints(run_dir: Path) -> list[Path]:
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    return [p for p in folder.glob("step-*") if (p / "meta.json").is_file()]


def has_checkpoint(log_root: Path, name: str) -> bool:
    """Return True when a run directory of the trial holds a complete checkpoint."""
    return any(_checkpoints(run_dir) for run_dir in run_dirs(log_root, name))


def remove_unresumable(log_root: Path, name: str) -> list[Path]:
    """Remove run directories without a checkpoint (a lost or failed start); return them.

    Called before a trial starts afresh, when no other attempt of it runs: they
    hold nothing to resume, and ``pamiqx compare`` would list them as unfinished.
    """
    removed = []
    for run_dir in run_dirs(log_root, name):
        if not _checkpoints(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
            removed.append(run_dir)
    return removed


def append_attempt(log_root: Path, **data: Any) -> int:
    """Record an attempt of the trial; return its number (1 for the first)."""
    number = len(read_attempts(log_root)) + 1
    record = {"attempt": number, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **data}
    with (log_root / ATTEMPTS).open("a") as file:
        file.write(json.dumps(record) + "\n")
    return number


def read_attempts(log_root: Path) -> list[dict[str, Any]]:
    """Return the recorded attempts of a trial, oldest first."""
    try:
        lines = (log_root / ATTEMPTS).read_text().splitlines()
    except OSError:
        return []
    attempts = []
    for line in lines:
        try:
            attempts.append(json.loads(line))
        except ValueError:
            continue
    return attempts


def write_result(log_root: Path, result: dict[str, Any]) -> None:
    """Write the finished run's last metrics (reported again when a resumed sweep skips it)."""
    tmp = log_root / f".{RESULT}.tmp"
    tmp.write_text(json.dumps(result))
    tmp.replace(log_root / RESULT)


def read_result(log_root: Path) -> dict[str, Any]:
    """Return the finished run's last metrics (empty when not written)."""
    try:
        data = json.loads((log_root / RESULT).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
