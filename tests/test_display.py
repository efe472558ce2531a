"""Progress display: plain log lines off a terminal, a rich live view on one; summary lines."""

from __future__ import annotations

import re
import time
from io import StringIO
from pathlib import Path

from rich.console import Console

from pamiqx.display import make_display
from pamiqx.runtime.summary import MAX_SUMMARY_CURIOSITY, summary_metric_lines

METRICS = {"coverage": 0.41, "reward/intrinsic": 0.0123456, "loss/value": 2.5, "zzz": 1.0}


def _plain_console(width: int = 80) -> Console:
    return Console(file=StringIO(), force_terminal=False, width=width)


def _output(console: Console) -> str:
    file = console.file
    assert isinstance(file, StringIO)
    return file.getvalue()


def test_plain_lines_show_step_rate_and_key_metrics() -> None:
    console = _plain_console()
    with make_display("quickstart", 20_000, console=console, plain_interval_s=60) as display:
        display.update(12_000, METRICS)
    lines = _output(console).splitlines()
    assert len(lines) == 1  # the first update; nothing new at exit
    line = lines[0]
    assert line.startswith("[quickstart] step 12000/20000 (60.0%) ")
    assert re.search(r" [\d.]+ steps/s eta \d+:\d\d:\d\d \| ", line), line
    assert "coverage=0.41 reward/intrinsic=0.01235" in line
    # Only key metrics when some are present.
    assert "loss/value" not in line
    assert "zzz" not in line


def test_plain_lines_are_rate_limited() -> None:
    console = _plain_console()
    with make_display("t", 100_000, console=console, plain_interval_s=60) as display:
        for step in range(1, 5_001):
            display.update(step, {"coverage": step / 5_000})
    lines = _output(console).splitlines()
    # The first update, then the final state at exit.
    assert len(lines) == 2
    assert lines[0].startswith("[t] step 1/100000")
    assert lines[1].startswith("[t] step 5000/100000 (5.0%)")
    assert lines[1].endswith("coverage=1")


def test_plain_lines_every_update_when_interval_is_zero() -> None:
    console = _plain_console()
    with make_display("t", 10, console=console, plain_interval_s=0) as display:
        for step in range(1, 4):
            display.update(step, {"entropy": 1.0})
    assert len(_output(console).splitlines()) == 3


def test_plain_checkpoint_and_message_lines() -> None:
    console = _plain_console()
    path = Path("/runs/quickstart/checkpoints/step-5000")
    with make_display("quickstart", 20_000, console=console) as display:
        display.checkpoint(path, 5_000)
        display.message("resumed [from] step 5000")
    assert _output(console).splitlines() == [
        f"[quickstart] checkpoint step 5000 -> {path}",
        "[quickstart] resumed [from] step 5000",
    ]


def test_plain_lines_do_not_wrap() -> None:
    console = _plain_console(width=30)
    with make_display("quickstart", 20_000, console=console) as display:
        display.update(100, METRICS)
    assert len(_output(console).splitlines()) == 1


def test_plain_rate_counts_only_steps_after_a_resume() -> None:
    console = _plain_console()
    with make_display("t", 10_000, start_step=9_000, console=console, plain_interval_s=0) as d:
        time.sleep(0.05)
        d.update(9_500, {})
    match = re.search(r" ([\d.]+) steps/s", _output(console))
    assert match is not None
    # 500 new steps in at least 0.05 s; counting the 9000 old ones would give >= 10x more.
    assert float(match.group(1)) <= 500 / 0.05


def test_plain_without_key_metrics_shows_the_first_ones() -> None:
    console = _plain_console()
    with make_display("t", 10, console=console) as display:
        display.update(1, {"b": 2.0, "a": 1.0})
    assert _output(console).rstrip().endswith("| a=1 b=2")


def test_non_terminal_console_gets_plain_lines_and_terminal_gets_live() -> None:
    plain = _plain_console()
    with make_display("t", 10, console=plain) as display:
        display.update(5, {"coverage": 0.5})
    assert "\x1b[" not in _output(plain)

    forced = Console(file=StringIO(), force_terminal=True, width=120)
    with make_display("t", 10, console=forced, interactive=False) as display:
        display.update(5, {"coverage": 0.5})
    assert _output(forced).startswith("[t] step 5/10")


def test_live_view_renders_progress_metrics_and_checkpoint() -> None:
    console = Console(file=StringIO(), force_terminal=True, width=120)
    many = {f"group/metric{i:02d}": i * 1.2345 for i in range(20)}
    with make_display("quick[start]", 100, console=console) as display:
        for step in range(1, 101):
            display.update(step, METRICS | many)
        display.checkpoint(Path("/runs/q/step-100"), 100)
        display.message("a [bold] message")
    out = _output(console)
    assert "100/100" in out
    assert "steps/s" in out
    assert "quick[start]" in out
    assert "coverage" in out
    assert "0.41" in out
    assert "more metrics" in out  # 24 metrics, 16 shown
    assert "/runs/q/step-100" in out
    assert "a [bold] message" in out


def test_live_view_resumed_run_starts_at_start_step() -> None:
    console = Console(file=StringIO(), force_terminal=True, width=120)
    with make_display("t", 1_000, start_step=400, console=console):
        pass
    assert "400/1000" in _output(console)


# --- the end-of-run summary's metric lines --------------------------------------------


def test_summary_shows_curiosity_metrics_first_to_last_and_the_time_split() -> None:
    first = {"curiosity/loss": 0.5, "coverage": 0.1, "perf/collect_seconds": 9.0}
    last = {
        "curiosity/loss": 0.125,
        "curiosity/agent/surprise": 2.0,
        "coverage": 0.4,
        "perf/collect_seconds": 3.0,
        "perf/train_seconds": 1.0,
    }
    assert summary_metric_lines(first, last) == [
        "  curiosity/agent/surprise: nan at start -> 2 at end",  # logged only later
        "  curiosity/loss: 0.5 at start -> 0.125 at end",
        "  last phase: collect 3.00 s (75%), train 1.00 s (25%)",
    ]


def test_summary_of_a_realtime_run_times_only_training() -> None:
    lines = summary_metric_lines({}, {"perf/train_seconds": 0.5})
    assert lines == ["  last phase: train 0.50 s (the world ran alongside)"]


def test_summary_caps_the_curiosity_metrics() -> None:
    last = {f"curiosity/m{i:02d}": float(i) for i in range(MAX_SUMMARY_CURIOSITY + 3)}
    lines = summary_metric_lines(last, last)
    assert len(lines) == MAX_SUMMARY_CURIOSITY + 1
    assert lines[0] == "  curiosity/m00: 0 at start -> 0 at end"
    assert lines[-1] == "  (+3 more curiosity/ metrics)"


def test_summary_without_curiosity_or_timing_metrics_adds_nothing() -> None:
    assert summary_metric_lines({}, {"coverage": 0.5}) == []
