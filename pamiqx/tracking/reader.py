"""Reading tracked series and hyper-parameters back from an Aim repository.

aim only adds runs to the repository index (what ``Repo.iter_runs`` and the Aim
UI read) from ``aim up``; :func:`read_metrics` indexes the runs it reads. aim is
imported inside the functions that need it: importing this module is cheap.

A repository whose shared files cannot be opened is a
:class:`~pamiqx.api.errors.PamiqxError`; one run whose own files are damaged
(``.aim/meta/chunks/<hash>``, ``.aim/seqs/chunks/<hash>``) is an
:class:`AimRunUnreadable` naming that run, so a caller can skip it and read the
others. The series are read without aim's run queries, which go through the
repository's ``run_metadata.sqlite``: a damaged one costs the run names and
experiments (the ``experiment`` filter), not the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pamiqx.api.errors import PamiqxError
from pamiqx.tracking.exit_hook import replace_aim_exit_hook
from pamiqx.tracking.run_list import forget_cached_run_list

__all__ = ["AimRepoUnreadable", "AimRunUnreadable", "Metrics", "read_metrics", "read_params"]

#: Metric series per run hash: metric name -> [(step, value)] in step order.
Metrics = dict[str, dict[str, list[tuple[int, float]]]]


class AimRepoUnreadable(PamiqxError):
    """An Aim repository's shared files cannot be read: none of its runs can.

    Attributes:
        repo: The repository folder.
    """

    def __init__(self, repo: Path, message: str) -> None:
        """Describe the damaged repository.

        Args:
            repo: The repository folder.
            message: The whole message (it names ``repo``).
        """
        self.repo = repo
        super().__init__(message)


class AimRunUnreadable(PamiqxError):
    """One run of an Aim repository cannot be read (its files are damaged).

    Attributes:
        repo: The repository folder.
        run_hash: The run.
    """

    def __init__(self, repo: Path, run_hash: str, cause: BaseException) -> None:
        """Describe the damaged run.

        Args:
            repo: The repository folder.
            run_hash: The run.
            cause: What aim raised while reading it.
        """
        self.repo = repo
        self.run_hash = run_hash
        super().__init__(
            f"The Aim run {run_hash} in the repository {repo} cannot be read "
            f"({_describe(cause)}): its files (.aim/meta/chunks/{run_hash}, "
            f".aim/seqs/chunks/{run_hash}) are damaged, e.g. by a full disk or a copy "
            "made while it was written. The repository's other runs are not affected."
        )


def read_metrics(repo: Path, run_hash: str | None = None, experiment: str | None = None) -> Metrics:
    """Read the metric series tracked in an Aim repository.

    Only series tracked without an Aim context are read (those :class:`AimTracker`
    writes); Aim's own system series (``__system__...``) are left out.

    Args:
        repo: Folder of the Aim repository (``<log_dir>/aim`` by default).
        run_hash: Read only this run (a run directory's ``events.jsonl`` start event
            and checkpoints name it).
        experiment: Read only runs of this Aim experiment (the experiment's name).

    Returns:
        Run hash -> metric name -> ``[(step, value)]`` sorted by step; empty when
        the repository does not hold ``run_hash``.

    Raises:
        AimRunUnreadable: A run's own files are damaged (it names the run).
        PamiqxError: The folder holds no Aim repository or it cannot be read.
    """
    path = _repo_path(repo)
    aim_repo, hashes = _open_repo(path, run_hash)
    failed = _index_runs(aim_repo, hashes)
    metrics: Metrics = {}
    for hash_ in hashes:
        try:
            run = _open_run(aim_repo, hash_, failed)
            if experiment is not None and run.experiment != experiment:
                continue
            metrics[hash_] = _run_series(run)
        except Exception as exc:
            _check_index(aim_repo, path)
            raise AimRunUnreadable(path, hash_, exc) from exc
    return metrics


def read_params(repo: Path, run_hash: str) -> dict[str, Any]:
    """Read the hyper-parameters stored with a run (``run["hparams"]``).

    Args:
        repo: Folder of the Aim repository.
        run_hash: The run.

    Returns:
        The stored hyper-parameters; empty when the run has none or does not exist.

    Raises:
        AimRunUnreadable: The run's own files are damaged.
        PamiqxError: The folder holds no Aim repository or it cannot be read.
    """
    path = _repo_path(repo)
    aim_repo, hashes = _open_repo(path, run_hash)
    failed = _index_runs(aim_repo, hashes)
    for hash_ in hashes:
        try:
            params = _open_run(aim_repo, hash_, failed).get("hparams", {})
        except Exception as exc:
            _check_index(aim_repo, path)
            raise AimRunUnreadable(path, hash_, exc) from exc
        return dict(params) if isinstance(params, Mapping) else {}
    return {}


def _repo_path(repo: Path) -> Path:
    """The repository's absolute folder.

    Raises:
        PamiqxError: The folder holds no Aim repository.
    """
    from aim.sdk.repo import Repo

    replace_aim_exit_hook()
    path = Path(repo).expanduser().absolute()
    if not Repo.exists(str(path)):
        raise PamiqxError(
            f"No Aim repository at {path} (no '.aim' folder there). Give the folder "
            "of the tracking.repo setting, or '<log_dir>/aim' when it is empty."
        )
    return path


def _open_repo(path: Path, run_hash: str | None) -> tuple[Any, list[str]]:
    """Open a repository and list its runs (or the one with ``run_hash``, if it holds it).

    Raises:
        PamiqxError: The repository's shared files cannot be read.
    """
    from aim.sdk.repo import Repo

    try:
        aim_repo = Repo.from_path(str(path))
        forget_cached_run_list()
        hashes = sorted(aim_repo.list_all_runs())
    except Exception as exc:
        raise AimRepoUnreadable(
            path,
            f"Cannot read the Aim repository at {path}: {_describe(exc)}. If it is "
            "corrupt, runs that are still readable can be listed with `aim runs --repo "
            f"{path} ls`; move the folder away to start a fresh repository.",
        ) from exc
    if run_hash is not None:
        hashes = [h for h in hashes if h == run_hash]
    return aim_repo, hashes


def _check_index(aim_repo: Any, path: Path) -> None:
    """After a run failed to open: blame the repository's index if that is what is damaged.

    Every run is opened through the index (``.aim/meta/index``), so a damaged
    index makes each run look damaged; aim rebuilds it from the runs' own files.

    Raises:
        AimRepoUnreadable: The index cannot be opened.
    """
    try:
        aim_repo.request_tree("meta", read_only=True)
    except Exception as exc:
        raise AimRepoUnreadable(
            path,
            f"Cannot read the Aim repository at {path}: its index (.aim/meta/index) is "
            f"damaged ({_describe(exc)}). `aim storage --repo {path} reindex` rebuilds it "
            "from the runs' own files.",
        ) from exc


def _index_runs(aim_repo: Any, hashes: list[str]) -> dict[str, Exception]:
    """Index every run before any is opened; return what failed, per run.

    A run opened read-only reads the index as it was when the first run opened
    it, so runs indexed after that would look empty.
    """
    failed: dict[str, Exception] = {}
    for hash_ in hashes:
        try:
            _index_run(aim_repo, hash_)
        except Exception as exc:  # noqa: BLE001 - raised for that run when it is opened
            failed[hash_] = exc
    return failed


def _open_run(aim_repo: Any, run_hash: str, failed: Mapping[str, Exception]) -> Any:
    """Open an indexed run read-only (raises what aim raised for damaged files)."""
    from aim.sdk.run import Run

    if run_hash in failed:
        raise failed[run_hash]
    return Run(run_hash, repo=aim_repo, read_only=True)


def _describe(error: BaseException) -> str:
    """An exception in one line, without the SQL statement sqlalchemy appends."""
    first = error.args[0] if error.args else None
    text = first.decode(errors="replace") if isinstance(first, bytes) else str(error)
    text = text.split("\n", 1)[0].strip() or repr(error)
    name = type(error).__name__
    return text if text.startswith(f"{name}:") else f"{name}: {text}"


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
    """Metric name -> [(step, value)] of a read-only Aim run, for context-free series.

    ``run.metrics()`` would filter the series through a query on the repository's
    sqlite file; listing them from the run's own tree does not need it.
    """
    from aim.sdk.sequences.metric import Metric

    series: dict[str, list[tuple[int, float]]] = {}
    for name, context, _ in run.iter_metrics_info():
        if name.startswith("__") or context.to_dict():
            continue
        metric = Metric(name, context, run)  # as run.metrics() makes them
        # numpy() sorts by step; the values' sparse views are in storage order.
        steps, (values, *_) = metric.data.view("val").numpy()
        series[name] = [
            (int(s), float(v)) for s, v in zip(steps.tolist(), values.tolist(), strict=True)
        ]
    return series
