"""The end-of-run summary: where the run is, how far it got, how its key metrics moved."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pamiqx.runtime.session import Run

SUMMARY_METRICS = ("coverage", "reward/intrinsic", "episode_return")
MAX_SUMMARY_CURIOSITY = 8


def summary_lines(run: Run, seconds: float, status: str) -> list[str]:
    """Return the end-of-run summary: where the run is and how it went."""
    done = run.step - run.started_at_step
    lines = [
        f"run {status}: {run.exp.name}",
        f"  run directory: {run.run_dir}",
        f"  steps: {run.step:,} / {run.exp.run.max_steps:,} "
        f"({done:,} this session in {seconds:.1f} s, {done / max(seconds, 1e-9):,.0f} steps/s)",
    ]
    for key in SUMMARY_METRICS:
        if key in run.last_metrics:
            first = run.first_metrics.get(key, float("nan"))
            lines.append(f"  {key}: {first:.4g} at start -> {run.last_metrics[key]:.4g} at end")
    lines += summary_metric_lines(run.first_metrics, run.last_metrics)
    if run.tracker.run_hash:
        lines.append(
            f"  aim run: {run.tracker.run_hash} (make aim, then open http://127.0.0.1:43800)"
        )
    return lines


def summary_metric_lines(first: Mapping[str, float], last: Mapping[str, float]) -> list[str]:
    """Lines for the end-of-run summary: the curiosity's own metrics and where time went.

    Args:
        first: Metrics of the run's first training phase (kept across resumes).
        last: Metrics of its last training phase.

    Returns:
        Each ``curiosity/...`` metric as ``first -> last``, then the last phase's split
        into collecting and training (``perf/collect_seconds``, ``perf/train_seconds``).
    """
    names = sorted(name for name in last if name.startswith("curiosity/"))
    lines = [
        f"  {name}: {first.get(name, float('nan')):.4g} at start -> {last[name]:.4g} at end"
        for name in names[:MAX_SUMMARY_CURIOSITY]
    ]
    if len(names) > MAX_SUMMARY_CURIOSITY:
        lines.append(f"  (+{len(names) - MAX_SUMMARY_CURIOSITY} more curiosity/ metrics)")
    collect, train = last.get("perf/collect_seconds"), last.get("perf/train_seconds")
    if collect is not None and train is not None and collect + train > 0:
        share = collect / (collect + train)
        split = f"collect {collect:.2f} s ({share:.0%}), train {train:.2f} s ({1 - share:.0%})"
        lines.append(f"  last phase: {split}")
    elif train is not None:
        # Real-time runs collect while they train: only the training side is timed.
        lines.append(f"  last phase: train {train:.2f} s (the world ran alongside)")
    return lines
