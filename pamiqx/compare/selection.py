"""Which runs the statistics leave out: failed or unfinished runs, and duplicates.

A run whose last session failed, or has not ended (still running, or killed
without a trace), would pull its group's curves towards wherever it stopped;
two runs of one experiment name and seed are one seed counted twice. Both are
left out of the statistics and listed with the reason in the report.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from pamiqx.compare.runs import RunRecord

__all__ = ["LeftOut", "partition"]

# A failed run's reason is shown in one line of the report.
_REASON_CHARS = 160


@attrs.frozen
class LeftOut:
    """A run the statistics leave out, and why.

    Attributes:
        run: The run.
        why: The reason, a phrase ("failed: ...", "has not ended ...", "a duplicate of ...").
    """

    run: RunRecord
    why: str


def partition(runs: Sequence[RunRecord]) -> tuple[list[RunRecord], list[LeftOut]]:
    """Split runs into those the statistics use and those they leave out.

    Failed runs (the last ``end`` event says ``failed``) and runs whose last
    session has not ended are left out. Of the remaining runs with the same
    experiment name, seed, curiosity and world, the one that logged the
    furthest step is kept (then a finished one, then the one started last); the
    others are left out as its duplicates.

    Args:
        runs: The loaded runs, in the order found.

    Returns:
        The kept runs in their order, and the left-out ones (failed first, then duplicates).
    """
    kept: list[RunRecord] = []
    left_out: list[LeftOut] = []
    for run in runs:
        why = _failure(run)
        if why is None:
            kept.append(run)
        else:
            left_out.append(LeftOut(run, why))
    best: dict[tuple[str, int, str, str], RunRecord] = {}
    for run in kept:
        key = (run.name, run.seed, run.curiosity, run.world)
        if key not in best or _completeness(run) > _completeness(best[key]):
            best[key] = run
    unique: list[RunRecord] = []
    for run in kept:
        chosen = best[(run.name, run.seed, run.curiosity, run.world)]
        if run is chosen:
            unique.append(run)
        else:
            left_out.append(
                LeftOut(
                    run,
                    f"a duplicate of {chosen.path} (same experiment '{run.name}' and seed "
                    f"{run.seed}; the run that got further, or started later, is kept)",
                )
            )
    return unique, left_out


def _failure(run: RunRecord) -> str | None:
    if run.status == "failed":
        if not run.reason:
            return "failed"
        reason = " ".join(run.reason.split())
        if len(reason) > _REASON_CHARS:
            reason = reason[: _REASON_CHARS - 1] + "…"
        return f"failed: {reason}"
    if run.status == "running":
        return "has not ended (still running, or killed)"
    return None


def _completeness(run: RunRecord) -> tuple[int, bool, str, str]:
    return (run.last_step, run.status == "finished", run.started, str(run.path))
