"""Grouping runs by curiosity and summarising each group over its seeds.

Seeds log their metrics at different steps (a resumed run, another
``log_every``), so each seed's series is interpolated linearly onto a common
grid: every step any seed logged, between the latest first step and the
earliest last step of the group. Comparing only up to the shortest seed keeps
every point an average over all seeds; the table marks a group whose seeds ran
to different lengths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from pamiqx.compare.errors import CompareError
from pamiqx.compare.runs import COVERAGE, INTRINSIC, RATE, RunRecord, Series
from pamiqx.compare.selection import LeftOut, partition

__all__ = ["Band", "GroupSummary", "group_key", "summarize"]

FloatArray = npt.NDArray[np.float64]


@attrs.frozen
class Band:
    """One metric of a group on its common step grid.

    Attributes:
        steps: The grid (environment steps).
        mean: Mean over seeds at each step.
        low: Minimum over seeds at each step.
        high: Maximum over seeds at each step.
        seeds: How many seeds the band is made of.
    """

    steps: FloatArray
    mean: FloatArray
    low: FloatArray
    high: FloatArray
    seeds: int


@attrs.frozen
class GroupSummary:
    """The runs of one curiosity (in one environment) and their statistics.

    Attributes:
        key: Group label: the curiosity, or ``curiosity @ environment`` when the
            compared runs use several environments.
        runs: The group's runs (its seeds).
        horizon: Common last step of the group's runs (the shortest seed's last
            logged step), or None without coverage and intrinsic reward series.
        longest: Last logged step of the longest seed.
        coverage: Coverage band, or None when no seed tracked coverage.
        intrinsic: Intrinsic reward band, or None when no seed tracked it.
        final_coverage: Coverage of each seed with coverage, at ``horizon``.
        threshold: Coverage level of :attr:`steps_to_threshold`.
        steps_to_threshold: Per seed with coverage: the first logged step, up to
            ``horizon``, at which coverage reached ``threshold``; None if it did not.
        rates: Environment steps per second of wall time, per seed that has one.
        rate_estimated: True when a rate came from event times, not the perf metric.
        left_out: The group's runs the statistics leave out (failed, not ended,
            duplicates), with the reason; a group may consist of these alone.
    """

    key: str
    runs: tuple[RunRecord, ...]
    horizon: int | None
    longest: int | None
    coverage: Band | None
    intrinsic: Band | None
    final_coverage: tuple[float, ...]
    threshold: float
    steps_to_threshold: tuple[int | None, ...]
    rates: tuple[float, ...]
    rate_estimated: bool
    left_out: tuple[LeftOut, ...] = ()

    @property
    def seeds(self) -> int:
        """Number of runs in the group."""
        return len(self.runs)

    @property
    def final_mean(self) -> float | None:
        """Mean final coverage over seeds, or None without coverage."""
        return float(np.mean(self.final_coverage)) if self.final_coverage else None

    @property
    def final_std(self) -> float | None:
        """Sample standard deviation (ddof 1) of the final coverage; None under 2 seeds."""
        if len(self.final_coverage) < 2:
            return None
        return float(np.std(self.final_coverage, ddof=1))

    @property
    def reached(self) -> int:
        """How many seeds reached the coverage threshold."""
        return sum(step is not None for step in self.steps_to_threshold)

    @property
    def steps_to_threshold_mean(self) -> float | None:
        """Mean steps to the threshold over the seeds that reached it; None if none did."""
        reached = [step for step in self.steps_to_threshold if step is not None]
        return float(np.mean(reached)) if reached else None

    @property
    def rate_mean(self) -> float | None:
        """Mean rate over the seeds that have one."""
        return float(np.mean(self.rates)) if self.rates else None

    @property
    def truncated(self) -> bool:
        """True when seeds ran to different lengths (statistics stop at the shortest)."""
        return self.horizon is not None and self.longest is not None and self.longest > self.horizon


def group_key(run: RunRecord, mixed_environments: bool) -> str:
    """Label of the group a run belongs to.

    Args:
        run: The run.
        mixed_environments: Whether the compared runs use several environments.

    Returns:
        ``curiosity``, or ``curiosity @ environment`` for mixed environments.
    """
    return f"{run.curiosity} @ {run.environment}" if mixed_environments else run.curiosity


def summarize(runs: Sequence[RunRecord], threshold: float = 0.5) -> list[GroupSummary]:
    """Group runs by curiosity and summarise each group.

    Failed runs, runs that have not ended and duplicates are left out of the
    statistics (:func:`pamiqx.compare.selection.partition`) and kept in
    :attr:`GroupSummary.left_out`, so the report lists them.

    Args:
        runs: The runs to compare.
        threshold: Coverage level of the "steps to" statistic.

    Returns:
        One summary per group, highest final coverage first (groups without
        coverage last, by name).

    Raises:
        CompareError: Every run is left out.
    """
    kept, left_out = partition(runs)
    if runs and not kept:
        shown = "; ".join(f"{item.run.path}: {item.why}" for item in left_out[:3])
        more = f"; and {len(left_out) - 3} more" if len(left_out) > 3 else ""
        raise CompareError(
            f"Nothing to compare: all {len(left_out)} run(s) are left out of the statistics "
            f"({shown}{more}). A stopped run continues from its last checkpoint with "
            "`pamiqx run EXPERIMENT_FILE --resume RUN_DIR`; one still going on can be "
            "compared once it ends."
        )
    mixed = len({run.environment for run in runs}) > 1
    groups: dict[str, list[RunRecord]] = {}
    for run in kept:
        groups.setdefault(group_key(run, mixed), []).append(run)
    dropped: dict[str, list[LeftOut]] = {}
    for item in left_out:
        key = group_key(item.run, mixed)
        dropped.setdefault(key, []).append(item)
        groups.setdefault(key, [])
    summaries = [
        _summarize_group(key, members, threshold, tuple(dropped.get(key, ())))
        for key, members in groups.items()
    ]
    return sorted(summaries, key=_rank)


def _rank(group: GroupSummary) -> tuple[bool, float, str]:
    final = group.final_mean
    return (final is None, -(final or 0.0), group.key)


def differing_settings(group: GroupSummary) -> list[str]:
    """Settings (dotted keys) in which a group's runs differ beyond their seed.

    Args:
        group: A group.

    Returns:
        Sorted dotted keys; empty when the runs are repetitions of one experiment.
    """
    keys = {key for run in group.runs for key in run.settings}
    missing = object()
    return sorted(
        key
        for key in keys
        if len({_hashable(run.settings.get(key, missing)) for run in group.runs}) > 1
    )


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, list | dict) else value


def _summarize_group(
    key: str, runs: list[RunRecord], threshold: float, left_out: tuple[LeftOut, ...]
) -> GroupSummary:
    with_coverage = [run.series(COVERAGE) for run in runs if run.series(COVERAGE)]
    with_intrinsic = [run.series(INTRINSIC) for run in runs if run.series(INTRINSIC)]
    # The table's steps follow coverage, the metric the group is ranked by.
    reference = with_coverage or with_intrinsic
    horizon = min(series[-1][0] for series in reference) if reference else None
    longest = max(series[-1][0] for series in reference) if reference else None
    final: list[float] = []
    reach: list[int | None] = []
    if horizon is not None:
        for series in with_coverage:
            final.append(_value_at(series, horizon))
            reach.append(_first_step_at_least(series, threshold, horizon))
    rates: list[float] = []
    estimated = False
    for run in runs:
        rate = _harmonic_mean([value for _, value in run.series(RATE)])
        if rate is None and run.event_rate is not None:
            rate, estimated = run.event_rate, True
        if rate is not None:
            rates.append(rate)
    return GroupSummary(
        key=key,
        runs=tuple(runs),
        horizon=horizon,
        longest=longest,
        coverage=band(with_coverage),
        intrinsic=band(with_intrinsic),
        final_coverage=tuple(final),
        threshold=threshold,
        steps_to_threshold=tuple(reach),
        rates=tuple(rates),
        rate_estimated=estimated,
        left_out=left_out,
    )


def common_grid(series: Sequence[Series]) -> FloatArray:
    """Every step any series logged, within the range all of them cover.

    Args:
        series: Non-empty (step, value) series.

    Returns:
        Sorted steps; empty when the series do not overlap.
    """
    start = max(s[0][0] for s in series)
    stop = min(s[-1][0] for s in series)
    steps = sorted({step for s in series for step, _ in s if start <= step <= stop})
    return np.asarray(steps, dtype=np.float64)


def band(series: Sequence[Series]) -> Band | None:
    """Mean, minimum and maximum of the series on their common grid.

    Args:
        series: One (step, value) series per seed; empty ones are not allowed.

    Returns:
        The band, or None when there are no series or they do not overlap.
    """
    if not series:
        return None
    grid = common_grid(series)
    if grid.size == 0:
        return None
    values = np.stack([_interpolate(s, grid) for s in series])
    return Band(
        steps=grid,
        mean=values.mean(axis=0),
        low=values.min(axis=0),
        high=values.max(axis=0),
        seeds=len(series),
    )


def _interpolate(series: Series, grid: FloatArray) -> FloatArray:
    steps = np.asarray([step for step, _ in series], dtype=np.float64)
    values = np.asarray([value for _, value in series], dtype=np.float64)
    return np.interp(grid, steps, values)


def _value_at(series: Series, step: int) -> float:
    return float(_interpolate(series, np.asarray([step], dtype=np.float64))[0])


def _first_step_at_least(series: Series, level: float, until: int) -> int | None:
    for step, value in series:
        if step > until:
            break
        if value >= level:
            return step
    return None


def _harmonic_mean(rates: Sequence[float]) -> float | None:
    """Steps per second over phases of equal size: total steps / total seconds.

    Lock-step training phases are all ``rollout_steps * num_envs`` steps long, so
    the harmonic mean of their rates is the rate over the whole time they took.
    """
    positive = [rate for rate in rates if rate > 0]
    if not positive:
        return None
    return len(positive) / sum(1.0 / rate for rate in positive)
