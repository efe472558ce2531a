"""A group's series on a common step grid: interpolation, bands, areas and rates.

Seeds log their metrics at different steps (a resumed run, another
``log_every``), so each seed's series is interpolated linearly onto a common
grid: every step any seed logged, between the latest first step and the
earliest last step of the group.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import attrs
import numpy as np
import numpy.typing as npt

from pamiqx.compare.intervals import iqm_curve, iqm_per_step
from pamiqx.compare.runs import Series

FloatArray = npt.NDArray[np.float64]

#: Bootstrap resamples of the pointwise bands of the curves (drawn, not claimed from).
CURVE_REPS = 500


@attrs.frozen
class Band:
    """One metric of a group on its common step grid, seed by seed.

    The IQM over seeds is computed at once; the pointwise bootstrap band only
    when it is first asked for (drawing the plots), since it costs a bootstrap
    over the whole curve.

    Attributes:
        steps: The grid (environment steps).
        values: ``(seeds, steps)`` each seed interpolated onto the grid.
        reps: Bootstrap resamples of the band.
        seed: Seeds the band's resampling.
    """

    steps: FloatArray
    values: FloatArray
    reps: int = CURVE_REPS
    seed: int = 0

    @property
    def seeds(self) -> int:
        """How many seeds the band is made of."""
        return int(self.values.shape[0])

    @property
    def iqm(self) -> FloatArray:
        """IQM over seeds at each step (the mean with fewer than 4 seeds)."""
        return iqm_per_step(self.values[:, None, :])

    @functools.cached_property
    def interval(self) -> tuple[FloatArray, FloatArray]:
        """Pointwise 95% bootstrap band of the IQM: (low, high), each ``(steps,)``."""
        _, low, high = iqm_curve(self.values, reps=self.reps, seed=self.seed)
        return low, high

    @property
    def low(self) -> FloatArray:
        """Lower edge of the band."""
        return self.interval[0]

    @property
    def high(self) -> FloatArray:
        """Upper edge of the band."""
        return self.interval[1]


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


def band(series: Sequence[Series], seed: int = 0) -> Band | None:
    """The seeds' values on their common grid.

    Args:
        series: One (step, value) series per seed; empty ones are not allowed.
        seed: Seeds the band's bootstrap.

    Returns:
        The band, or None when there are no series or they do not overlap.
    """
    if not series:
        return None
    grid = common_grid(series)
    if grid.size == 0:
        return None
    values = np.stack([interpolate(s, grid) for s in series])
    return Band(steps=grid, values=values, seed=seed)


def normalized_auc(series: Series, start: int, stop: int) -> float:
    """Area under a piecewise-linear series from ``start`` to ``stop``, divided by the span.

    The mean value over the span (for coverage, a number in [0, 1]): the
    trapezoid rule over the logged points in between, the ends interpolated.

    Args:
        series: (step, value) pairs in step order.
        start: First step of the span.
        stop: Last step of the span (a span of one step gives the value there).
    """
    if stop <= start:
        return value_at(series, stop)
    steps = np.asarray([step for step, _ in series], dtype=np.float64)
    inside = steps[(steps > start) & (steps < stop)]
    grid = np.concatenate([[float(start)], inside, [float(stop)]])
    values = interpolate(series, grid)
    return float(np.trapezoid(values, grid) / (stop - start))


def interpolate(series: Series, grid: FloatArray) -> FloatArray:
    """Return a series' values at the grid's steps, linear between logged points."""
    steps = np.asarray([step for step, _ in series], dtype=np.float64)
    values = np.asarray([value for _, value in series], dtype=np.float64)
    return np.interp(grid, steps, values)


def value_at(series: Series, step: int) -> float:
    """Return a series' value at ``step``, interpolated linearly between logged points."""
    return float(interpolate(series, np.asarray([step], dtype=np.float64))[0])


def first_step_at_least(series: Series, level: float, until: int) -> int | None:
    """Return the first logged step, up to ``until``, whose value reaches ``level``."""
    for step, value in series:
        if step > until:
            break
        if value >= level:
            return step
    return None


def harmonic_mean(rates: Sequence[float]) -> float | None:
    """Steps per second over phases of equal size: total steps / total seconds.

    Lock-step training phases are all ``rollout_steps * num_envs`` steps long, so
    the harmonic mean of their rates is the rate over the whole time they took.
    """
    positive = [rate for rate in rates if rate > 0]
    if not positive:
        return None
    return len(positive) / sum(1.0 / rate for rate in positive)
