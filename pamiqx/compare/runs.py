"""What a comparison knows of a run: :class:`RunRecord`, and :func:`load_runs` to read them.

The run directories themselves are found and read in :mod:`pamiqx.compare.run_dirs`;
the metrics come from the run's Aim repository (:mod:`pamiqx.tracking`): the
``aim`` folder of its own logs folder when that holds the run (a logs folder
copied or moved elsewhere brings its repository along), else the one it recorded.
A run whose Aim files are damaged is skipped with a warning naming the run and the
repository, so the others are still compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from pamiqx.compare.errors import CompareError
from pamiqx.compare.run_dirs import (
    RunFiles,
    end_reason,
    event_rate,
    find_run_dirs,
    read_run_files,
    run_status,
    start_time,
)
from pamiqx.tracking.reader import AimRepoUnreadable, AimRunUnreadable

__all__ = [
    "COVERAGE",
    "INTRINSIC",
    "RATE",
    "CompareError",
    "RunRecord",
    "Series",
    "load_runs",
]

#: Fraction of floor cells visited (sim-maze's evaluation metric).
COVERAGE = "coverage"
#: Raw intrinsic reward, mean over a rollout.
INTRINSIC = "reward/intrinsic"
#: Environment steps per second of wall time over a lock-step training phase.
RATE = "perf/steps_per_second"

#: (step, value) pairs in step order.
Series = tuple[tuple[int, float], ...]

# Settings that may differ between the seeds of one comparison group.
_SEED_SETTINGS = {
    "name",
    "seed",
    "description",
    "run.max_steps",
    "run.device",
    "run.checkpoint_every",
    "run.keep_checkpoints",
    "run.log_every",
    "run.log_dir",
}


@attrs.frozen
class RunRecord:
    """One run as a comparison sees it.

    Attributes:
        path: The run directory.
        name: Experiment name.
        seed: Experiment seed.
        curiosity: Curiosity plugin name (without a ``distribution:`` prefix).
        environment: Environment plugin name (without a ``distribution:`` prefix).
        status: Status of the last ``end`` event, or ``running`` when the last
            session has not ended (a run that is going on, or was killed).
        metrics: Metric name -> (step, value) series in step order.
        settings: The resolved experiment as dotted key -> value, for spotting
            runs that differ in more than their seed.
        event_rate: Steps per second between the run's start/resume and end
            events, for runs without :data:`RATE` (real-time worlds); None when
            the events do not tell.
        reason: Why the run's last session ended, as its ``end`` event says (the
            error of a failed run), or None.
        started: Time of its ``start`` event (``YYYY-mm-ddTHH:MM:SS``), or "".
    """

    path: Path
    name: str
    seed: int
    curiosity: str
    environment: str
    status: str
    metrics: Mapping[str, Series] = attrs.field(factory=dict)
    settings: Mapping[str, Any] = attrs.field(factory=dict)
    event_rate: float | None = None
    reason: str | None = None
    started: str = ""

    @property
    def world(self) -> str:
        """Return the world the run explored: its environment's ``id``, else the plugin's name.

        ``sim-maze``, or ``MiniGrid-FourRooms-v0`` for the ``gymnasium`` plugin with
        ``id = "MiniGrid-FourRooms-v0"`` (the id names the world; the plugin only adapts it).
        """
        world_id = self.settings.get("environment.id")
        return str(world_id) if world_id else self.environment

    @property
    def last_step(self) -> int:
        """Return the last step the run logged coverage or intrinsic reward at (0 if none)."""
        ends = [self.series(m)[-1][0] for m in (COVERAGE, INTRINSIC) if self.series(m)]
        return max(ends, default=0)

    def series(self, metric: str) -> Series:
        """Return the series of ``metric`` (empty when the run did not track it).

        Args:
            metric: Metric name, e.g. :data:`COVERAGE`.

        Returns:
            (step, value) pairs in step order.
        """
        return tuple(self.metrics.get(metric, ()))


def load_runs(
    paths: Sequence[Path],
    repo: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[RunRecord]:
    """Load the runs at ``paths`` with their metrics.

    A run named explicitly that has no metrics is an error; one found by
    searching a folder is skipped with a warning (a folder of runs often holds
    one that failed before it logged anything). A run whose Aim files are damaged
    is skipped with a warning naming the run and the repository wherever it was
    found (nothing the user can fix makes it readable), as long as ``warn`` is given.

    Args:
        paths: Run directories, or folders searched for them.
        repo: Read every run from this Aim repository instead of its own.
        warn: Called with a message for each run that is skipped.

    Returns:
        The runs, in the order found (failed and duplicate runs included:
        :func:`pamiqx.compare.summarize` leaves them out of the statistics).

    Raises:
        CompareError: No runs, an unreadable run directory, a run without
            metrics, or no run left to compare.
        PamiqxError: ``repo`` holds no Aim repository, or a repository cannot be
            read and ``warn`` is None.
    """
    records: list[RunRecord] = []
    skipped: list[str] = []
    unreadable_repos: set[Path] = set()

    def skip(message: str) -> None:
        skipped.append(message)
        if warn is not None:
            warn(f"skipped: {message}")

    for run_dir, explicit in find_run_dirs(paths):
        try:
            records.append(_load_run(run_dir, repo))
        except CompareError as error:
            if explicit or warn is None:
                raise
            skip(str(error))
        except AimRunUnreadable as error:
            if warn is None:
                raise
            skip(f"the run {run_dir}: {error}")
        except AimRepoUnreadable as error:
            if warn is None:
                raise
            if error.repo in unreadable_repos:
                skip(f"the run {run_dir}: its Aim repository {error.repo} cannot be read (above).")
            else:
                unreadable_repos.add(error.repo)
                skip(f"the run {run_dir}: {error}")
    if not records:
        named = ", ".join(str(p) for p in paths)
        if len(skipped) == 1:
            raise CompareError(f"Nothing to compare in {named}: skipped {skipped[0]}")
        why = f" ({len(skipped)} runs skipped, see the warnings above)" if skipped else ""
        raise CompareError(f"No run with metrics in {named}{why}; nothing to compare.")
    return records


def _load_run(run_dir: Path, repo: Path | None) -> RunRecord:
    files = read_run_files(run_dir)
    exp = files.experiment
    status = run_status(files.events)
    reason = end_reason(files.events)
    ended = f" (it {status}: {reason})" if status == "failed" and reason else ""
    if not files.run_hashes:
        tracking = exp.get("tracking", {})
        why = (
            "it ran with tracking.enabled = false"
            if isinstance(tracking, dict) and tracking.get("enabled") is False
            else "neither its start event nor a checkpoint names an Aim run"
        )
        raise CompareError(f"The run {run_dir} has no metrics: {why}{ended}.")
    aim_repo = repo if repo is not None else _find_repo(files)
    metrics, found = _read_series(aim_repo, files.run_hashes)
    if not found:
        raise CompareError(
            f"The run {run_dir} has no metrics: the Aim repository {aim_repo} does not "
            f"hold its Aim run {' or '.join(files.run_hashes)}. Pass --repo with the "
            "repository its metrics went to."
        )
    if COVERAGE not in metrics and INTRINSIC not in metrics:
        raise CompareError(
            f"The run {run_dir} has no metrics to compare: its Aim run in {aim_repo} has "
            f"no '{COVERAGE}' or '{INTRINSIC}' series yet (a run logs its first metrics "
            f"after its first rollout){ended}."
        )
    return RunRecord(
        path=run_dir,
        name=str(exp.get("name", run_dir.parent.name)),
        seed=int(exp.get("seed", 0)),
        curiosity=_plugin_name(exp, "curiosity", "none"),
        environment=_plugin_name(exp, "environment", "?"),
        status=status,
        metrics=metrics,
        settings=_flatten(exp),
        event_rate=event_rate(files.events),
        reason=reason,
        started=start_time(files.events),
    )


def _find_repo(files: RunFiles) -> Path:
    """The Aim repository of a run: the first candidate that holds one of its Aim runs.

    The candidates, in order: ``aim`` in the run's own logs folder
    (``<run_dir>/../../aim``, where the runtime puts it; a logs folder that was
    copied or moved keeps it there), the repository its start event recorded, and
    its ``tracking.repo``. When none holds the run, the first that is a repository
    (so the error names it), else an error listing them.
    """
    candidates: list[Path] = [files.path.parent.parent / "aim"]
    if files.recorded_repo:
        candidates.append(Path(files.recorded_repo))
    tracking = files.experiment.get("tracking", {})
    if isinstance(tracking, dict) and tracking.get("repo"):
        candidates.append(Path(str(tracking["repo"])).expanduser())
    candidates = list(dict.fromkeys(candidates))
    repos = [c for c in candidates if (c / ".aim").is_dir()]
    for repo in repos:
        if any(_holds_run(repo, run_hash) for run_hash in files.run_hashes):
            return repo
    if repos:
        return repos[0]
    tried = ", ".join(str(c) for c in candidates)
    raise CompareError(
        f"No Aim repository found for the run {files.path} (tried {tried}). "
        "Pass --repo with the folder of the repository its metrics went to."
    )


def _holds_run(repo: Path, run_hash: str) -> bool:
    """Whether an Aim repository has files of the run (aim's layout: one folder per run)."""
    return (repo / ".aim" / "meta" / "chunks" / run_hash).is_dir()


def _read_series(repo: Path, run_hashes: Iterable[str]) -> tuple[dict[str, Series], bool]:
    """The Aim runs' series merged by step, and whether the repository holds any of them.

    A later Aim run wins where two logged the same step.
    """
    from pamiqx.tracking import read_metrics

    merged: dict[str, dict[int, float]] = {}
    found = False
    for run_hash in run_hashes:
        runs = read_metrics(repo, run_hash)
        found = found or run_hash in runs
        for name, points in runs.get(run_hash, {}).items():
            merged.setdefault(name, {}).update(points)
    return {name: tuple(sorted(points.items())) for name, points in merged.items()}, found


def _plugin_name(experiment: Mapping[str, Any], section: str, default: str) -> str:
    table = experiment.get(section, {})
    written = str(table.get("plugin", default)) if isinstance(table, dict) else default
    # "distribution:name" picks among same-named plugins; the name is what readers know.
    return written.rsplit(":", 1)[-1]


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys, without the settings seeds may differ in."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{dotted}."))
        elif dotted not in _SEED_SETTINGS and not dotted.startswith("tracking."):
            flat[dotted] = value
    return flat
