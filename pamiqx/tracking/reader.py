"""Reading tracked series and hyper-parameters back from an Aim repository.

aim only adds runs to the repository index (what ``Repo.iter_runs`` and the Aim
UI read) from ``aim up``; :func:`read_metrics` indexes the runs it reads. aim is
imported inside the functions that need it: importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pamiqx.api.errors import PamiqxError
from pamiqx.tracking.exit_hook import replace_aim_exit_hook

__all__ = ["Metrics", "read_metrics", "read_params"]

#: Metric series per run hash: metric name -> [(step, value)] in step order.
Metrics = dict[str, dict[str, list[tuple[int, float]]]]


def read_metrics(repo: Path, run_hash: str | None = None, experiment: str | None = None) -> Metrics:
    """Read the metric series tracked in an Aim repository.

    Only series tracked without an Aim context are read (those :class:`AimTracker`
    writes); Aim's own system series (``__system__...``) are left out.

    Args:
        repo: Folder of the Aim repository.
        run_hash: Read only this run.
        experiment: Read only runs of this Aim experiment.

    Returns:
        Run hash -> metric name -> ``[(step, value)]`` sorted by step.

    Raises:
        PamiqxError: The folder holds no Aim repository or it cannot be read.
    """
    return {
        run.hash: _run_series(run)
        for run in _read_runs(Path(repo), run_hash)
        if experiment is None or run.experiment == experiment
    }


def read_params(repo: Path, run_hash: str) -> dict[str, Any]:
    """Read the hyper-parameters stored with a run (``run["hparams"]``).

    Args:
        repo: Folder of the Aim repository.
        run_hash: The run.

    Returns:
        The stored hyper-parameters; empty when the run has none or does not exist.

    Raises:
        PamiqxError: The folder holds no Aim repository or it cannot be read.
    """
    for run in _read_runs(Path(repo), run_hash):
        params = run.get("hparams", {})
        return dict(params) if isinstance(params, Mapping) else {}
    return {}


def _read_runs(repo: Path, run_hash: str | None) -> Iterator[Any]:
    """Yield the runs of a repository (or the one with ``run_hash``) as read-only Aim runs.

    Raises:
        PamiqxError: The folder holds no Aim repository or it cannot be read.
    """
    from aim.sdk.repo import Repo
    from aim.sdk.run import Run

    replace_aim_exit_hook()
    path = repo.expanduser().absolute()
    if not Repo.exists(str(path)):
        raise PamiqxError(
            f"No Aim repository at {path} (no '.aim' folder there). Give the folder "
            "of the tracking.repo setting, or '<log_dir>/aim' when it is empty."
        )
    try:
        aim_repo = Repo.from_path(str(path))
        hashes = sorted(aim_repo.list_all_runs())
        if run_hash is not None:
            hashes = [h for h in hashes if h == run_hash]
        for hash_ in hashes:
            _index_run(aim_repo, hash_)
        # Read all before yielding: an error while the caller iterates would escape the
        # message below.
        runs = [Run(hash_, repo=aim_repo, read_only=True) for hash_ in hashes]
    except Exception as exc:
        raise PamiqxError(
            f"Cannot read the Aim repository at {path}: {exc!r}. If it is corrupt, "
            "runs that are still readable can be listed with `aim runs --repo "
            f"{path} ls`; move the folder away to start a fresh repository."
        ) from exc
    yield from runs


def _index_run(aim_repo: Any, run_hash: str) -> None:
    """Copy a run's metadata into the repository index, as ``aim up`` does.

    Mirrors ``aim.sdk.index_manager.RepoIndexManager.index``, without its file
    watcher threads. Another process indexing at the same time (``aim up``) keeps
    the index busy; its entry is then at most a few seconds old, which is fine.
    """
    try:
        index = aim_repo._get_index_tree("meta", 0).view(())
    except Exception:  # noqa: BLE001 - the index is held by another writer: read what is there
        return
    meta = aim_repo.request_tree("meta", run_hash, read_only=True, skip_read_optimization=True)
    meta.subtree("meta").subtree("chunks").subtree(run_hash).finalize(index=index)


def _run_series(run: Any) -> dict[str, list[tuple[int, float]]]:
    """Metric name -> [(step, value)] of a read-only Aim run, for context-free series."""
    series: dict[str, list[tuple[int, float]]] = {}
    for metric in run.metrics():
        if metric.name.startswith("__") or metric.context.to_dict():
            continue
        # numpy() sorts by step; the values' sparse views are in storage order.
        steps, (values, *_) = metric.data.view("val").numpy()
        series[metric.name] = [
            (int(s), float(v)) for s, v in zip(steps.tolist(), values.tolist(), strict=True)
        ]
    return series
