"""Interval estimates for the comparison, through rliable (Agarwal et al., 2021).

Every statistic here is rliable's: the interquartile mean
(``rliable.metrics.aggregate_iqm``), the probability of improvement
(``rliable.metrics.probability_of_improvement``), stratified-bootstrap
confidence intervals (``rliable.library.get_interval_estimates``) and
performance profiles (``rliable.library.create_performance_profile``). This
module shapes pamiqx's per-seed numbers into rliable's ``(runs, tasks)``
matrices, makes the bootstrap reproducible, and gives the answers as
:class:`Estimate`.

rliable draws its bootstrap resamples from numpy's global generator
(``np.random.choice``); each function here seeds it for the call and restores
its state afterwards, so a report is the same every time it is made and the
caller's random stream is left as it was.

Importing this module imports numpy only; rliable (scipy, arch, pandas) is
imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

__all__ = [
    "CONFIDENCE",
    "DEFAULT_REPS",
    "Estimate",
    "iqm",
    "iqm_curve",
    "iqm_interval",
    "iqm_per_step",
    "performance_profiles",
    "plot_utils",
    "probability_of_improvement",
    "rliable_modules",
    "run_score_profile",
]

FloatArray = npt.NDArray[np.float64]

#: Bootstrap resamples per interval: rliable's own default for performance
#: profiles; its 50,000 for point statistics would make a report of eleven
#: mechanisms take minutes, for a Monte Carlo error far below the seeds' spread.
DEFAULT_REPS = 2000
#: Coverage of every interval.
CONFIDENCE = 0.95


@attrs.frozen
class Estimate:
    """A point estimate with its confidence interval.

    Attributes:
        point: The statistic on the observed seeds.
        low: Lower bound of the interval.
        high: Upper bound of the interval.
    """

    point: float
    low: float
    high: float

    def text(self, digits: int = 3) -> str:
        """Return ``point [low, high]`` with ``digits`` decimals."""
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def rliable_modules() -> tuple[Any, Any]:
    """Return ``rliable.library`` and ``rliable.metrics``, imported on first use (scipy)."""
    return importlib.import_module("rliable.library"), importlib.import_module("rliable.metrics")


def _memoized(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` of score matrices, evaluated once per distinct resample.

    The statistics here do not depend on the order of the runs within a task,
    so a resample is keyed by its runs sorted within each task. With few seeds
    most of the bootstrap's resamples repeat (3 seeds give 10 distinct ones), and
    each of rliable's statistics is computed once for each; the results are the
    same as calling ``func`` every time.
    """
    cache: dict[tuple[tuple[tuple[int, ...], bytes], ...], Any] = {}

    def wrapper(*arrays: FloatArray) -> Any:
        key = tuple((a.shape, np.sort(a, axis=0).tobytes()) for a in arrays)
        if key not in cache:
            cache[key] = func(*arrays)
        return cache[key]

    return wrapper


def plot_utils() -> Any:
    """Return ``rliable.plot_utils`` (it imports matplotlib's pyplot and seaborn)."""
    rliable_modules()
    return importlib.import_module("rliable.plot_utils")


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed numpy's global generator (rliable's resampling draws from it), then restore it."""
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


def _matrix(scores: Sequence[float] | FloatArray) -> FloatArray:
    """Scores as rliable's ``(runs, tasks)`` matrix: a 1-D array is one task."""
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"scores must be (runs,) or (runs, tasks), runs >= 1; got {array.shape}")
    return array


def iqm(scores: Sequence[float] | FloatArray) -> float:
    """Return the interquartile mean: the mean of the middle 50% of all scores.

    rliable's ``aggregate_iqm`` (``scipy.stats.trim_mean`` cutting 25% at each
    end, rounded down): with fewer than 4 scores nothing is cut and it is the mean.

    Args:
        scores: ``(runs,)`` or ``(runs, tasks)``.
    """
    _, metrics = rliable_modules()
    return float(metrics.aggregate_iqm(_matrix(scores)))


def iqm_interval(
    scores: Sequence[float] | FloatArray,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """Return the IQM with its stratified-bootstrap percentile confidence interval.

    Args:
        scores: ``(runs,)`` or ``(runs, tasks)``; runs are resampled within each task.
        reps: Bootstrap resamples.
        seed: Seeds the resampling.
        confidence: Coverage of the interval.
    """
    library, metrics = rliable_modules()
    matrix = _matrix(scores)
    with _seeded(seed):
        points, intervals = library.get_interval_estimates(
            {"x": matrix},
            _memoized(lambda x: np.array([metrics.aggregate_iqm(x)])),
            reps=reps,
            confidence_interval_size=confidence,
        )
    low, high = np.asarray(intervals["x"], dtype=np.float64).reshape(2)
    return Estimate(float(np.asarray(points["x"]).reshape(-1)[0]), float(low), float(high))


def iqm_per_step(scores: FloatArray) -> FloatArray:
    """Return the IQM over runs (and tasks) at each step of ``(runs, tasks, steps)`` scores.

    The same statistic as ``rliable.metrics.aggregate_iqm`` of each step's
    ``(runs, tasks)`` slice (``scipy.stats.trim_mean``, 25% cut at each end),
    computed for all steps at once so that a bootstrap over a whole curve stays fast.

    Args:
        scores: ``(runs, tasks, steps)``.
    """
    stats = importlib.import_module("scipy.stats")  # untyped; rliable's own dependency
    flat = scores.reshape(-1, scores.shape[-1])
    return np.asarray(stats.trim_mean(flat, 0.25, axis=0), dtype=np.float64)


def iqm_curve(
    values: FloatArray, reps: int = DEFAULT_REPS, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return the IQM over runs at each step and a pointwise bootstrap band.

    As rliable's sample-efficiency curves: the runs are resampled independently
    at each step (``get_interval_estimates`` on a ``(runs, 1, steps)`` array), so
    the band is a pointwise interval, not a band for the whole curve at once.

    Args:
        values: ``(runs, steps)`` on a common grid.
        reps: Bootstrap resamples.
        seed: Seeds the resampling.
        confidence: Coverage of the band at each step.

    Returns:
        (iqm, low, high), each ``(steps,)``.
    """
    library, _ = rliable_modules()
    scores = np.asarray(values, dtype=np.float64)[:, None, :]
    with _seeded(seed):
        points, intervals = library.get_interval_estimates(
            {"x": scores}, iqm_per_step, reps=reps, confidence_interval_size=confidence
        )
    band = np.asarray(intervals["x"], dtype=np.float64)
    return np.asarray(points["x"], dtype=np.float64), band[0], band[1]


def probability_of_improvement(
    x: Sequence[float] | FloatArray,
    y: Sequence[float] | FloatArray,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """Return P(X > Y) with its stratified independent-bootstrap confidence interval.

    rliable's ``probability_of_improvement``: the chance that a run of X scores
    more than a run of Y (the Mann-Whitney U statistic over ``n_x * n_y``, ties
    counting half), averaged over tasks; 0.5 when the two are identical.

    Args:
        x: Scores of X, ``(runs_x,)`` or ``(runs_x, tasks)``.
        y: Scores of Y, with the same tasks.
        reps: Bootstrap resamples (each sample resampled on its own).
        seed: Seeds the resampling.
        confidence: Coverage of the interval.
    """
    library, metrics = rliable_modules()
    scores_x, scores_y = _matrix(x), _matrix(y)
    if scores_x.shape[1] != scores_y.shape[1]:
        raise ValueError(f"x has {scores_x.shape[1]} tasks, y {scores_y.shape[1]}")
    with _seeded(seed):
        points, intervals = library.get_interval_estimates(
            {"x,y": [scores_x, scores_y]},
            _memoized(metrics.probability_of_improvement),
            reps=reps,
            confidence_interval_size=confidence,
        )
    low, high = np.asarray(intervals["x,y"], dtype=np.float64).reshape(2)
    return Estimate(float(points["x,y"]), float(low), float(high))


def run_score_profile(scores: FloatArray, taus: FloatArray) -> FloatArray:
    """Return the fraction of all runs' scores above each threshold.

    rliable's run-score distribution (``score_distributions``), computed for all
    thresholds at once.

    Args:
        scores: ``(runs, tasks)``.
        taus: ``(K,)`` thresholds.
    """
    flat = np.asarray(scores, dtype=np.float64).reshape(-1)
    return np.asarray((flat[:, None] > np.asarray(taus)[None, :]).mean(axis=0), dtype=np.float64)


def performance_profiles(
    scores: Mapping[str, FloatArray],
    taus: FloatArray,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    """Return rliable's performance profiles (run-score distributions) with bootstrap bands.

    Args:
        scores: Per method, a ``(runs, tasks)`` matrix of scores normalised alike
            in every task (coverage is a fraction in every world).
        taus: Thresholds.
        reps: Bootstrap resamples.
        seed: Seeds the resampling.
        confidence: Coverage of the bands.

    Returns:
        (profiles, bands): per method the ``(K,)`` fraction of runs scoring above
        each threshold, and its ``(2, K)`` lower and upper bounds.
    """
    library, _ = rliable_modules()
    with _seeded(seed):
        profiles, bands = library.create_performance_profile(
            {key: _matrix(value) for key, value in scores.items()},
            np.asarray(taus, dtype=np.float64),
            custom_profile_func=run_score_profile,
            reps=reps,
            confidence_interval_size=confidence,
        )
    return (
        {k: np.asarray(v, dtype=np.float64) for k, v in profiles.items()},
        {k: np.asarray(v, dtype=np.float64) for k, v in bands.items()},
    )
