"""Grouping runs by curiosity and world, and their statistics over seeds.

A group is one curiosity in one world (:attr:`RunRecord.world`). Its seeds are
summarised by the interquartile mean (IQM) with a 95% stratified-bootstrap
confidence interval (rliable, :mod:`pamiqx.compare.intervals`), of the final
coverage and of the normalised area under the coverage curve, and compared
with the baselines ``none`` and ``random`` of the same world by the probability
of improvement, with its interval.

Seeds log their metrics at different steps (a resumed run, another
``log_every``), so each seed's series is interpolated linearly onto a common
grid: every step any seed logged, between the latest first step and the
earliest last step of the group. Comparing only up to the shortest seed keeps
every point a statistic over all seeds; the table marks a group whose seeds ran
to different lengths. Two groups are compared at the last step both reached.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from pamiqx.compare.curves import (
    CURVE_REPS,
    Band,
    band,
    first_step_at_least,
    harmonic_mean,
    normalized_auc,
    value_at,
)
from pamiqx.compare.errors import CompareError
from pamiqx.compare.intervals import (
    DEFAULT_REPS,
    Estimate,
    iqm_interval,
    probability_of_improvement,
)
from pamiqx.compare.runs import COVERAGE, INTRINSIC, RATE, RunRecord, Series
from pamiqx.compare.selection import LeftOut, partition

__all__ = [
    "AUC",
    "BASELINES",
    "CURVE_REPS",
    "FINAL",
    "Band",
    "GroupSummary",
    "Improvement",
    "compared_horizon",
    "differing_settings",
    "group_key",
    "normalized_auc",
    "summarize",
]


#: The baselines every mechanism is compared with, in this order.
BASELINES = ("none", "random")
#: Names of the two per-seed scores.
FINAL = "final coverage"
AUC = "coverage AUC"


@attrs.frozen
class Improvement:
    """The probability that a run of a group beats a run of a baseline in one score.

    Attributes:
        baseline: The baseline's curiosity (``none`` or ``random``).
        metric: :data:`FINAL` or :data:`AUC`.
        step: The step both groups are compared at (the last both reached).
        estimate: P(improvement) with its 95% interval.
        seeds: (the group's seeds, the baseline's seeds).
    """

    baseline: str
    metric: str
    step: int
    estimate: Estimate
    seeds: tuple[int, int]

    @property
    def verdict(self) -> str:
        """``better`` when the interval lies above 0.5, ``worse`` below, else ``unresolved``."""
        if self.estimate.low > 0.5:
            return "better"
        if self.estimate.high < 0.5:
            return "worse"
        return "unresolved"


@attrs.frozen
class GroupSummary:
    """The runs of one curiosity in one world, and their statistics.

    Attributes:
        key: Group label: the curiosity, or ``curiosity @ world`` when the
            compared runs are in several worlds.
        curiosity: The curiosity plugin.
        world: The world (:attr:`RunRecord.world`).
        runs: The group's runs (its seeds).
        horizon: Common last step of the group's runs (the shortest seed's last
            logged step), or None without coverage and intrinsic reward series.
        longest: Last logged step of the longest seed.
        start: First step of the coverage grid (the latest first step of a seed), or None.
        coverage: Coverage band, or None when no seed tracked coverage.
        intrinsic: Intrinsic reward band, or None when no seed tracked it.
        final_coverage: Coverage of each seed with coverage, at ``horizon``.
        auc: Normalised area under each seed's coverage curve, ``start`` to ``horizon``.
        final_iqm: IQM of ``final_coverage`` with its 95% interval, or None.
        auc_iqm: IQM of ``auc`` with its 95% interval, or None.
        threshold: Coverage level of :attr:`steps_to_threshold`.
        steps_to_threshold: Per seed with coverage: the first logged step, up to
            ``horizon``, at which coverage reached ``threshold``; None if it did not.
        rates: Environment steps per second of wall time, per seed that has one.
        rate_estimated: True when a rate came from event times, not the perf metric.
        reps: Bootstrap resamples behind the intervals.
        left_out: The group's runs the statistics leave out (failed, not ended,
            duplicates), with the reason; a group may consist of these alone.
        improvements: Comparisons with the baselines of its world.
    """

    key: str
    curiosity: str
    world: str
    runs: tuple[RunRecord, ...]
    horizon: int | None
    longest: int | None
    start: int | None
    coverage: Band | None
    intrinsic: Band | None
    final_coverage: tuple[float, ...]
    auc: tuple[float, ...]
    final_iqm: Estimate | None
    auc_iqm: Estimate | None
    threshold: float
    steps_to_threshold: tuple[int | None, ...]
    rates: tuple[float, ...]
    rate_estimated: bool
    reps: int = DEFAULT_REPS
    left_out: tuple[LeftOut, ...] = ()
    improvements: tuple[Improvement, ...] = ()

    @property
    def seeds(self) -> int:
        """Number of runs in the group."""
        return len(self.runs)

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

    def improvement(self, baseline: str, metric: str = FINAL) -> Improvement | None:
        """Return the comparison with ``baseline`` in ``metric``, if there is one."""
        for item in self.improvements:
            if (item.baseline, item.metric) == (baseline, metric):
                return item
        return None


def group_key(run: RunRecord, mixed_worlds: bool) -> str:
    """Label of the group a run belongs to.

    Args:
        run: The run.
        mixed_worlds: Whether the compared runs are in several worlds.

    Returns:
        ``curiosity``, or ``curiosity @ world`` for mixed worlds.
    """
    return f"{run.curiosity} @ {run.world}" if mixed_worlds else run.curiosity


def summarize(
    runs: Sequence[RunRecord],
    threshold: float = 0.5,
    *,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
) -> list[GroupSummary]:
    """Group runs by curiosity and world, summarise each group, compare with the baselines.

    Failed runs, runs that have not ended and duplicates are left out of the
    statistics (:func:`pamiqx.compare.selection.partition`) and kept in
    :attr:`GroupSummary.left_out`, so the report lists them.

    Args:
        runs: The runs to compare.
        threshold: Coverage level of the "steps to" statistic.
        reps: Bootstrap resamples of each interval.
        seed: Seeds the bootstrap (each interval derives its own from it).

    Returns:
        One summary per group: each world's groups together, highest IQM of
        final coverage first (groups without coverage last, by name), the worlds
        in the order of their best group.

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
    mixed = len({run.world for run in runs}) > 1
    groups: dict[str, list[RunRecord]] = {}
    for run in kept:
        groups.setdefault(group_key(run, mixed), []).append(run)
    dropped: dict[str, list[LeftOut]] = {}
    for item in left_out:
        key = group_key(item.run, mixed)
        dropped.setdefault(key, []).append(item)
        groups.setdefault(key, [])
    summaries = [
        _summarize_group(
            key,
            members,
            threshold,
            tuple(dropped.get(key, ())),
            reps,
            seed,
            members[0] if members else dropped[key][0].run,
        )
        for key, members in groups.items()
    ]
    summaries = sorted(
        (_with_improvements(group, summaries, reps, seed) for group in summaries), key=_rank
    )
    # Each world's groups together, the worlds in the order of their best group.
    worlds = list(dict.fromkeys(group.world for group in summaries))
    return sorted(summaries, key=lambda group: worlds.index(group.world))


def _rank(group: GroupSummary) -> tuple[bool, float, str]:
    final = group.final_iqm
    return (final is None, -(final.point if final else 0.0), group.key)


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


def _derived_seed(seed: int, *parts: str) -> int:
    """A seed of its own for each interval, independent of the order groups are made in."""
    return (seed * 1_000_003 + zlib.crc32("|".join(parts).encode())) % 2**32


def _summarize_group(
    key: str,
    runs: list[RunRecord],
    threshold: float,
    left_out: tuple[LeftOut, ...],
    reps: int,
    seed: int,
    example: RunRecord,
) -> GroupSummary:
    with_coverage = [run.series(COVERAGE) for run in runs if run.series(COVERAGE)]
    with_intrinsic = [run.series(INTRINSIC) for run in runs if run.series(INTRINSIC)]
    # The table's steps follow coverage, the metric the group is ranked by.
    reference = with_coverage or with_intrinsic
    horizon = min(series[-1][0] for series in reference) if reference else None
    longest = max(series[-1][0] for series in reference) if reference else None
    start = max(series[0][0] for series in with_coverage) if with_coverage else None
    final: list[float] = []
    auc: list[float] = []
    reach: list[int | None] = []
    if horizon is not None and start is not None:
        for series in with_coverage:
            final.append(value_at(series, horizon))
            auc.append(normalized_auc(series, min(start, horizon), horizon))
            reach.append(first_step_at_least(series, threshold, horizon))
    rates: list[float] = []
    estimated = False
    for run in runs:
        rate = harmonic_mean([value for _, value in run.series(RATE)])
        if rate is None and run.event_rate is not None:
            rate, estimated = run.event_rate, True
        if rate is not None:
            rates.append(rate)
    final_iqm = auc_iqm = None
    if final:
        final_iqm = iqm_interval(final, reps, _derived_seed(seed, key, FINAL))
        auc_iqm = iqm_interval(auc, reps, _derived_seed(seed, key, AUC))
    return GroupSummary(
        key=key,
        curiosity=example.curiosity,
        world=example.world,
        runs=tuple(runs),
        horizon=horizon,
        longest=longest,
        start=start,
        coverage=band(with_coverage, _derived_seed(seed, key, COVERAGE)),
        intrinsic=band(with_intrinsic, _derived_seed(seed, key, INTRINSIC)),
        final_coverage=tuple(final),
        auc=tuple(auc),
        final_iqm=final_iqm,
        auc_iqm=auc_iqm,
        threshold=threshold,
        steps_to_threshold=tuple(reach),
        rates=tuple(rates),
        rate_estimated=estimated,
        reps=reps,
        left_out=left_out,
    )


def _compared_with(curiosity: str) -> list[str]:
    """The baselines a curiosity is compared with: each one but itself, once per pair."""
    if curiosity in BASELINES:
        return list(BASELINES[BASELINES.index(curiosity) + 1 :])
    return list(BASELINES)


def _with_improvements(
    group: GroupSummary, groups: Sequence[GroupSummary], reps: int, seed: int
) -> GroupSummary:
    """The group with its P(improvement) over each baseline of its world, in both scores."""
    if not group.final_coverage:
        return group
    found: list[Improvement] = []
    for name in _compared_with(group.curiosity):
        same_world = (g for g in groups if g.world == group.world and g.final_coverage)
        baseline = next((g for g in same_world if g.curiosity == name), None)
        if baseline is None:
            continue
        step = min(compared_horizon(group), compared_horizon(baseline))
        start = min(max(_start(group), _start(baseline)), step)
        scores = {
            FINAL: (_finals(group, step), _finals(baseline, step)),
            AUC: (_aucs(group, start, step), _aucs(baseline, start, step)),
        }
        for metric, (mine, theirs) in scores.items():
            estimate = probability_of_improvement(
                mine, theirs, reps, _derived_seed(seed, group.key, name, metric)
            )
            found.append(Improvement(name, metric, step, estimate, (len(mine), len(theirs))))
    return attrs.evolve(group, improvements=tuple(found))


def compared_horizon(group: GroupSummary) -> int:
    """Return the last step all of a group's seeds reached (groups with coverage have one)."""
    assert group.horizon is not None  # groups with final coverage have one
    return group.horizon


def _start(group: GroupSummary) -> int:
    assert group.start is not None  # groups with final coverage have one
    return group.start


def _coverages(group: GroupSummary) -> list[Series]:
    return [run.series(COVERAGE) for run in group.runs if run.series(COVERAGE)]


def _finals(group: GroupSummary, step: int) -> list[float]:
    if step == group.horizon:
        return list(group.final_coverage)
    return [value_at(series, step) for series in _coverages(group)]


def _aucs(group: GroupSummary, start: int, step: int) -> list[float]:
    if (start, step) == (group.start, group.horizon):
        return list(group.auc)
    return [normalized_auc(series, start, step) for series in _coverages(group)]
