"""Progress of a training run on the console.

:func:`make_display` picks one of two displays:

* on a terminal, a rich live view redrawn about 4 times a second: a progress bar
  (steps done/total, steps/s, ETA), a table of the latest metrics and the last
  checkpoint;
* elsewhere (CI, a pipe, a log file), plain lines at most every few seconds, so
  logs stay readable and small.

``update`` is called for every batch of environment steps, so it only records the
values; drawing happens on the display's own schedule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

__all__ = ["ProgressDisplay", "make_display"]

#: Metrics shown first (plain lines show only these when present), most important first.
KEY_METRICS = ("coverage", "episode_return", "reward/intrinsic", "loss/policy", "entropy")
#: Most metrics in the live table.
MAX_TABLE_ROWS = 16
#: Live redraws per second.
REFRESH_PER_SECOND = 4.0
#: Most ``curiosity/`` metrics in the end-of-run summary.


class ProgressDisplay(Protocol):
    """Shows the progress of a run; use it as a context manager around the training loop."""

    def __enter__(self) -> Self:
        """Start showing progress (starts the wall clock of the step rate)."""
        ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Show the final state and stop; exceptions propagate."""
        ...

    def update(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record the current step and the latest metric values (cheap: no drawing).

        Args:
            step: Environment steps done so far (including those before a resume).
            metrics: Metric name -> latest value; names not given keep their last value.
        """
        ...

    def checkpoint(self, path: Path, step: int) -> None:
        """Report a saved checkpoint.

        Args:
            path: Where the checkpoint was written.
            step: Step it was taken at.
        """
        ...

    def message(self, text: str) -> None:
        """Show a line of text (printed as is, no markup).

        Args:
            text: The message.
        """
        ...


def make_display(
    title: str,
    total_steps: int,
    start_step: int = 0,
    interactive: bool | None = None,
    console: Console | None = None,
    plain_interval_s: float = 5.0,
) -> ProgressDisplay:
    """Make the display that suits the console.

    Args:
        title: Name shown on every line (the experiment's name).
        total_steps: Steps at which the run ends.
        start_step: Steps already done (a resumed run); the rate counts only new ones.
        interactive: Live view (True) or plain lines (False); None: live only when
            the console is a terminal (not under CI, a pipe or a log file).
        console: Where to draw; a new stdout console when None.
        plain_interval_s: Least seconds between two progress lines in plain mode.

    Returns:
        The display, to be used as a context manager.
    """
    console = console if console is not None else Console()
    if interactive is None:
        interactive = console.is_terminal
    if interactive:
        return _LiveDisplay(title, total_steps, start_step, console)
    return _PlainDisplay(title, total_steps, start_step, console, plain_interval_s)


class _Speed:
    """Steps per second since the display started, and the time left at that rate.

    Only steps after ``start_step`` count, so a resumed run does not report the
    steps of its earlier life as done in no time.
    """

    def __init__(self, start_step: int, total_steps: int) -> None:
        self._start_step = start_step
        self._total_steps = total_steps
        self._t0 = time.monotonic()

    def restart(self) -> None:
        """Start the clock now."""
        self._t0 = time.monotonic()

    def measure(self, step: int) -> tuple[float | None, float | None]:
        """Return (steps/s, seconds left), each None while unknown."""
        elapsed = time.monotonic() - self._t0
        done = step - self._start_step
        if done <= 0 or elapsed <= 0:
            return None, None
        rate = done / elapsed
        return rate, max(self._total_steps - step, 0) / rate


def _format_rate(rate: float | None) -> str:
    if rate is None:
        return "- steps/s"
    return f"{rate:.0f} steps/s" if rate >= 100 else f"{rate:.3g} steps/s"


def _format_eta(seconds: float | None) -> str:
    # Beyond a year an ETA says nothing (and timedelta overflows near 2.7 million years).
    if seconds is None or seconds > 365 * 86400:
        return "?"
    return str(timedelta(seconds=round(seconds)))


def _format_value(value: float) -> str:
    return f"{value:.4g}"


def _pick_metrics(metrics: Mapping[str, float], limit: int) -> list[str]:
    """At most ``limit`` names, key metrics first then alphabetical."""
    keys = [name for name in KEY_METRICS if name in metrics]
    rest = sorted(name for name in metrics if name not in KEY_METRICS)
    return (keys + rest)[:limit]


class _PlainDisplay:
    """Progress as log lines, at most one every ``interval_s`` seconds."""

    def __init__(
        self, title: str, total_steps: int, start_step: int, console: Console, interval_s: float
    ) -> None:
        self._prefix = f"[{title}]"
        self._total = total_steps
        self._console = console
        self._interval_s = interval_s
        self._speed = _Speed(start_step, total_steps)
        self._step = start_step
        self._metrics: dict[str, float] = {}
        self._last_line: float | None = None  # monotonic time of the last progress line
        self._pending = False  # updates not shown in a line yet

    def __enter__(self) -> Self:
        """Start the wall clock."""
        self._speed.restart()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Write the final progress line when it differs from the last one."""
        if self._pending:
            self._write_progress(time.monotonic())

    def update(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record step and metrics; write a line if the interval has passed.

        Args:
            step: Environment steps done so far.
            metrics: Latest metric values.
        """
        self._step = step
        self._metrics.update(metrics)
        self._pending = True
        now = time.monotonic()
        if self._last_line is None or now - self._last_line >= self._interval_s:
            self._write_progress(now)

    def checkpoint(self, path: Path, step: int) -> None:
        """Write a checkpoint line.

        Args:
            path: Where the checkpoint was written.
            step: Step it was taken at.
        """
        self._write(f"{self._prefix} checkpoint step {step} -> {path}")

    def message(self, text: str) -> None:
        """Write a message line.

        Args:
            text: The message.
        """
        self._write(f"{self._prefix} {text}")

    def _write_progress(self, now: float) -> None:
        self._last_line = now
        self._pending = False
        rate, eta = self._speed.measure(self._step)
        share = 100.0 * self._step / self._total if self._total > 0 else 100.0
        line = (
            f"{self._prefix} step {self._step}/{self._total} ({share:.1f}%) "
            f"{_format_rate(rate)} eta {_format_eta(eta)}"
        )
        names = [name for name in KEY_METRICS if name in self._metrics]
        names = names or sorted(self._metrics)[: len(KEY_METRICS)]
        if names:
            line += " | " + " ".join(f"{n}={_format_value(self._metrics[n])}" for n in names)
        self._write(line)

    def _write(self, line: str) -> None:
        # soft_wrap: a log line stays one line whatever the console width.
        self._console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
        self._console.file.flush()


class _LiveDisplay:
    """A rich live view redrawn by rich's refresh thread about 4 times a second."""

    def __init__(self, title: str, total_steps: int, start_step: int, console: Console) -> None:
        self._total = total_steps
        self._speed = _Speed(start_step, total_steps)
        # update() runs on the training thread, rendering on rich's refresh thread.
        self._lock = threading.Lock()
        self._step = start_step
        self._metrics: dict[str, float] = {}
        self._checkpoint: tuple[Path, int] | None = None
        # Never started itself: our Live draws it as part of the group.
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("eta {task.fields[eta]}"),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,
        )
        # Started in __enter__, so the elapsed time counts from there.
        self._task = self._progress.add_task(
            escape(title), start=False, total=total_steps, completed=start_step, rate="", eta=""
        )
        self._live = Live(
            console=console,
            get_renderable=self._render,
            refresh_per_second=REFRESH_PER_SECOND,
            transient=False,
        )

    def __enter__(self) -> Self:
        """Start the live view and the wall clock."""
        self._speed.restart()
        self._progress.start_task(self._task)
        self._live.start(refresh=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Draw the final state and stop the live view (the last frame stays on screen)."""
        self._live.stop()  # stop() draws a last frame

    def update(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record step and metrics for the next redraw.

        Args:
            step: Environment steps done so far.
            metrics: Latest metric values.
        """
        with self._lock:
            self._step = step
            self._metrics.update(metrics)

    def checkpoint(self, path: Path, step: int) -> None:
        """Show the checkpoint on the view's last line.

        Args:
            path: Where the checkpoint was written.
            step: Step it was taken at.
        """
        with self._lock:
            self._checkpoint = (path, step)

    def message(self, text: str) -> None:
        """Print a line above the live view.

        Args:
            text: The message.
        """
        self._live.console.print(Text(text))

    def _render(self) -> RenderableType:
        with self._lock:
            step = self._step
            metrics = dict(self._metrics)
            checkpoint = self._checkpoint
        rate, eta = self._speed.measure(step)
        self._progress.update(
            self._task,
            completed=min(step, self._total),
            rate=_format_rate(rate),
            eta=_format_eta(eta),
        )
        parts: list[RenderableType] = [self._progress]
        if metrics:
            parts.append(_metrics_table(metrics))
        if checkpoint is not None:
            path, at = checkpoint
            parts.append(Text(f"checkpoint: step {at} -> {path}", style="dim"))
        return Group(*parts)


def _metrics_table(metrics: Mapping[str, float]) -> Table:
    """The latest metrics, sorted by name, in two column pairs when many."""
    names = sorted(_pick_metrics(metrics, MAX_TABLE_ROWS))
    pairs = 2 if len(names) > MAX_TABLE_ROWS // 2 else 1
    hidden = len(metrics) - len(names)
    table = Table(
        box=None,
        show_header=False,
        pad_edge=False,
        padding=(0, 2, 0, 0),
        caption=f"+{hidden} more metrics" if hidden else None,
        caption_justify="left",
    )
    for _ in range(pairs):
        table.add_column(style="cyan", no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
    rows = (len(names) + pairs - 1) // pairs
    for row in range(rows):
        cells: list[RenderableType] = []
        # Column-major: the first column holds the first half of the names.
        for col in range(pairs):
            index = col * rows + row
            if index < len(names):
                # Text: a name is not rich markup.
                cells += [Text(names[index]), _format_value(metrics[names[index]])]
            else:
                cells += ["", ""]
        table.add_row(*cells)
    return table
