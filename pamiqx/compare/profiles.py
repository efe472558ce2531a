"""Final coverage per curiosity across worlds, arranged for rliable's performance profiles."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from pamiqx.compare.curves import FloatArray, value_at
from pamiqx.compare.runs import COVERAGE
from pamiqx.compare.stats import GroupSummary, compared_horizon

__all__ = ["ProfileScores", "profile_scores"]


@attrs.frozen
class ProfileScores:
    """Final coverage per curiosity across worlds, as rliable's ``(runs, worlds)`` matrices.

    Attributes:
        worlds: The worlds (columns), in the order the groups were ranked.
        steps: Per world, the step its groups are compared at (the last all reached).
        scores: Per curiosity, ``(runs, worlds)`` final coverage; every curiosity
            has the same number of runs in each world (its seeds in order, as
            many as its smallest world has).
        left_out: Curiosities missing from a world, which a profile over all
            worlds cannot include.
        trimmed: Curiosities with more seeds in one world than in another, whose
            later seeds were dropped to make the matrix.
    """

    worlds: tuple[str, ...]
    steps: tuple[int, ...]
    scores: dict[str, FloatArray]
    left_out: tuple[str, ...]
    trimmed: tuple[str, ...]


def profile_scores(groups: Sequence[GroupSummary]) -> ProfileScores:
    """Arrange the groups' final coverage for performance profiles across worlds.

    Args:
        groups: Summaries, ranked.

    Returns:
        The matrices (empty when no group has coverage).
    """
    scored = [g for g in groups if g.final_coverage]
    worlds = list(dict.fromkeys(g.world for g in scored))
    steps = [min(compared_horizon(g) for g in scored if g.world == world) for world in worlds]
    curiosities = list(dict.fromkeys(g.curiosity for g in scored))
    by_key = {(g.curiosity, g.world): g for g in scored}
    scores: dict[str, FloatArray] = {}
    left_out: list[str] = []
    trimmed: list[str] = []
    for curiosity in curiosities:
        cells = [by_key.get((curiosity, world)) for world in worlds]
        present = [g for g in cells if g is not None]
        if len(present) != len(cells):
            left_out.append(curiosity)
            continue
        columns = []
        for group, step in zip(present, steps, strict=True):
            ordered = sorted(
                (run.seed, value_at(run.series(COVERAGE), step))
                for run in group.runs
                if run.series(COVERAGE)
            )
            columns.append([value for _, value in ordered])
        runs = min(len(column) for column in columns)
        if any(len(column) > runs for column in columns):
            trimmed.append(curiosity)
        scores[curiosity] = np.asarray([c[:runs] for c in columns], dtype=np.float64).T
    return ProfileScores(tuple(worlds), tuple(steps), scores, tuple(left_out), tuple(trimmed))
