"""The end-of-run summary: where the run is, how far it got, how its key metrics moved."""

from __future__ import annotations

from collections.abc import Mapping

MAX_SUMMARY_CURIOSITY = 8


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
