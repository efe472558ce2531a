"""The sweep's progress: a live Rich table of trials, or plain lines in CI and logs.

:class:`ProgressCallback` is the Ray Tune callback; it forwards every trial
event to the :class:`Progress` the driver made active with :func:`showing`.
The callback itself holds nothing but a name, because Tune pickles its
callbacks into the experiment state and a resumed sweep gets them back.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
from ray.tune import Callback
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pamiqx.sweep.expand import TrialSpec
from pamiqx.sweep.state import TRIAL_LOG

__all__ = ["Progress", "ProgressCallback", "Row", "plain_output", "showing"]

PLAIN_EVERY_S = 30.0


def plain_output(stream: Any = None) -> bool:
    """Return True for plain lines: in CI (``CI`` set and not false) or not on a terminal."""
    ci = os.environ.get("CI", "").strip().lower()
    stream = stream or sys.stdout
    return (ci not in ("", "0", "false", "no")) or not stream.isatty()


@attrs.define
class Row:
    """What the table shows of one trial."""

    spec: TrialSpec
    status: str = "pending"
    step: int = 0
    rate: float | None = None
    coverage: float | None = None
    retries: int = 0
    error: str = ""
    last_line: float = 0.0

    @property
    def log(self) -> Path:
        """The trial's output (every attempt)."""
        return Path(self.spec.log_root) / TRIAL_LOG


class Progress:
    """The trials' rows and how they are shown (a live table, or plain lines)."""

    def __init__(self, trials: Sequence[TrialSpec], console: Console, plain: bool) -> None:
        """Start every trial as pending."""
        self.rows = {t.key: Row(t) for t in trials}
        self.console = console
        self.plain = plain
        self.live: Live | None = None

    # --- events (from the callback) -----------------------------------------------------
    def started(self, key: str) -> None:
        """A trial (or a retry of it) started."""
        row = self.rows[key]
        row.status = "running"
        self._line(row, "started" if not row.retries else f"started again (retry {row.retries})")

    def result(self, key: str, result: dict[str, Any]) -> None:
        """A trial reported metrics."""
        row = self.rows[key]
        row.step = int(result.get("step", row.step))
        row.rate = _number(result.get("rate"), row.rate)
        row.coverage = _number(result.get("coverage"), row.coverage)
        if self.plain and time.monotonic() - row.last_line >= PLAIN_EVERY_S:
            self._line(row, self._progress_text(row))
        self._refresh()

    def finished(self, key: str) -> None:
        """A trial finished."""
        row = self.rows[key]
        row.status = "finished"
        self._line(row, f"finished: {self._progress_text(row)}")

    def retrying(self, key: str, error: str) -> None:
        """A trial failed or its node was lost; Tune retries it from its checkpoint."""
        row = self.rows[key]
        row.retries += 1
        row.status = "retrying"
        row.error = error
        self._line(row, f"failed, retrying from its latest checkpoint: {error}")

    def failed(self, key: str, error: str) -> None:
        """A trial failed for good (its retries are spent)."""
        row = self.rows[key]
        row.status = "failed"
        row.error = error
        self._line(row, f"failed: {error} (log: {row.log})")

    # --- output --------------------------------------------------------------------------
    def _progress_text(self, row: Row) -> str:
        text = f"step {row.step:,}/{row.spec.max_steps:,}"
        if row.rate is not None:
            text += f", {row.rate:,.0f} steps/s"
        if row.coverage is not None:
            text += f", coverage {row.coverage:.3f}"
        return text

    def _line(self, row: Row, text: str) -> None:
        row.last_line = time.monotonic()
        if self.plain:
            self.console.print(f"[{row.spec.key}] {text}", markup=False, highlight=False)
        self._refresh()

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.table())

    def table(self) -> Table:
        """Return the table of trials."""
        table = Table(title="pamiqx sweep", title_justify="left")
        for column in ("trial", "status", "steps", "rate", "coverage", "retries"):
            table.add_column(column, justify="left" if column in ("trial", "status") else "right")
        styles = {"finished": "green", "failed": "red", "retrying": "yellow", "running": "cyan"}
        for row in self.rows.values():
            table.add_row(
                row.spec.key,
                f"[{styles.get(row.status, 'dim')}]{row.status}[/]",
                f"{row.step:,}/{row.spec.max_steps:,}",
                "" if row.rate is None else f"{row.rate:,.0f}/s",
                "" if row.coverage is None else f"{row.coverage:.3f}",
                str(row.retries),
            )
        return table

    def summary_lines(self) -> list[str]:
        """Return the closing summary: counts, then each failed trial with its log."""
        counts: dict[str, int] = {}
        for row in self.rows.values():
            counts[row.status] = counts.get(row.status, 0) + 1
        shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        lines = [f"sweep: {len(self.rows)} trials: {shown}"]
        for row in self.rows.values():
            if row.status != "finished":
                reason = f": {row.error}" if row.error else ""
                lines.append(f"  {row.spec.key} {row.status}{reason}")
                lines.append(f"    log: {row.log}")
                lines.append(f"    rerun by hand: {row.spec.command()}")
        return lines


_active: list[Progress] = []


@contextmanager
def showing(progress: Progress) -> Iterator[Progress]:
    """Make ``progress`` the one the callbacks update; show its live table on a terminal."""
    _active.append(progress)
    try:
        if progress.plain:
            yield progress
        else:
            with Live(progress.table(), console=progress.console, refresh_per_second=2) as live:
                progress.live = live
                yield progress
    finally:
        progress.live = None
        _active.remove(progress)


def _number(value: object, default: float | None) -> float | None:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


def _key(trial: Any) -> str | None:
    config = getattr(trial, "config", {}) or {}
    spec = config.get("trial") if isinstance(config, dict) else None
    return spec.get("key") if isinstance(spec, dict) else None


def _error_text(trial: Any) -> str:
    text = str(getattr(trial, "error_file", "") or "")
    path = Path(text) if text else None
    if path is not None and path.is_file():
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1][:300] if lines else text
    return "the trial's process or node was lost"


class ProgressCallback(Callback):
    """Ray Tune callback: trial events to the active :class:`Progress`."""

    def _progress(self, trial: Any) -> tuple[Progress, str] | None:
        key = _key(trial)
        if not _active or key is None or key not in _active[-1].rows:
            return None
        return _active[-1], key

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial started (again)."""
        if found := self._progress(trial):
            found[0].started(found[1])

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        """A trial reported a batch of metrics."""
        if found := self._progress(trial):
            found[0].result(found[1], result)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial finished."""
        if found := self._progress(trial):
            found[0].finished(found[1])

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial failed and will be retried."""
        if found := self._progress(trial):
            found[0].retrying(found[1], _error_text(trial))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial failed for good."""
        if found := self._progress(trial):
            found[0].failed(found[1], _error_text(trial))
