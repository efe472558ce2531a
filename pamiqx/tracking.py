"""Metric tracking in an Aim repository.

:func:`open_tracker` turns a :class:`~pamiqx.experiment.TrackingConfig` into a
:class:`Tracker`: a :class:`NullTracker` when tracking is disabled, else an
:class:`AimTracker` writing one Aim run (a resumed training continues its run).
:func:`read_metrics` reads the tracked series back.

aim is heavy to import (it pulls in numpy, sqlalchemy, rocksdb bindings), so it
is imported inside the functions that need it: importing this module is cheap.

Two quirks of aim 3.29 are handled here:

* aim registers ``AutoClean.cleanup`` with :mod:`atexit`; that callback starts a
  thread, which Python 3.12 forbids during interpreter shutdown, so every
  process printed ``Exception ignored in atexit callback`` and skipped aim's
  final cleanup. :func:`_replace_aim_exit_hook` runs the same cleanup on the
  exiting thread instead.
* aim only adds runs to the repository index (what ``Repo.iter_runs`` and the
  Aim UI read) from ``aim up``; :func:`read_metrics` indexes the runs it reads.
"""

from __future__ import annotations

import atexit
import math
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pamiqx.api.errors import PamiqxError

if TYPE_CHECKING:
    from pamiqx.experiment import TrackingConfig

__all__ = ["AimTracker", "NullTracker", "Tracker", "open_tracker", "read_metrics", "read_params"]

#: Metric series per run hash: metric name -> [(step, value)] in step order.
Metrics = dict[str, dict[str, list[tuple[int, float]]]]

# Runs this process holds open, as (repository path, run hash): opening one twice
# would wait on aim's own lock for 10 s before failing.
_open_runs: set[tuple[str, str]] = set()
_exit_hook_replaced = False


class Tracker(Protocol):
    """Where a training run sends its hyper-parameters and metrics."""

    @property
    def run_hash(self) -> str | None:
        """Identifier of the tracked run (stored in checkpoints to resume it); None if untracked."""
        ...

    def log_params(self, params: dict[str, Any]) -> None:
        """Store hyper-parameters of the run (merged into those stored before).

        Args:
            params: Nested mapping of plain values (str, numbers, bools, lists, dicts).
        """
        ...

    def track(self, metrics: Mapping[str, float], step: int) -> None:
        """Record metric values at an environment step; non-finite values are skipped.

        Args:
            metrics: Metric name (may contain ``/``, e.g. ``loss/policy``) -> value.
            step: Environment step the values belong to.
        """
        ...

    def close(self) -> None:
        """Finish the run and release its files; calling it again does nothing."""
        ...


class NullTracker:
    """A tracker that records nothing (tracking disabled)."""

    @property
    def run_hash(self) -> str | None:
        """Always None: nothing is tracked."""
        return None

    def log_params(self, params: dict[str, Any]) -> None:
        """Ignore hyper-parameters.

        Args:
            params: Ignored.
        """

    def track(self, metrics: Mapping[str, float], step: int) -> None:
        """Ignore metrics.

        Args:
            metrics: Ignored.
            step: Ignored.
        """

    def close(self) -> None:
        """Do nothing."""


class AimTracker:
    """Tracks one Aim run: metrics keep their names, hyper-parameters go to ``run["hparams"]``.

    Args:
        repo: Folder of the Aim repository (created and initialised when missing).
        experiment: Aim experiment name of the run.
        hparams: Hyper-parameters stored under ``run["hparams"]``.
        run_hash: Continue this existing run instead of starting one; when the
            repository no longer holds it, a new run starts (compare
            :attr:`run_hash` with the one asked for).
        system_metrics: Let Aim sample CPU, memory and GPU usage in a background thread.

    Attributes:
        resumed: True when the run continues the existing run ``run_hash``.

    Raises:
        PamiqxError: The repository cannot be opened (not writable, corrupt) or the
            run is held by another process.
    """

    def __init__(
        self,
        repo: Path,
        experiment: str,
        hparams: Mapping[str, Any] | None = None,
        run_hash: str | None = None,
        system_metrics: bool = False,
    ) -> None:
        self._repo_path = Path(repo).expanduser().absolute()
        self._run: Any = _open_run(self._repo_path, experiment, run_hash, system_metrics)
        self._hash: str = self._run.hash
        self._key = (str(self._repo_path), self._hash)
        _open_runs.add(self._key)
        self.resumed = run_hash is not None and run_hash == self._hash
        if not self.resumed:
            # A fresh run gets the whole table, so that it exists even when empty.
            self._run["hparams"] = _plain(dict(hparams or {}))
        elif hparams:
            self.log_params(dict(hparams))

    @property
    def run_hash(self) -> str:
        """Hash of the Aim run."""
        return self._hash

    @property
    def repo(self) -> Path:
        """Absolute folder of the Aim repository."""
        return self._repo_path

    def log_params(self, params: dict[str, Any]) -> None:
        """Store hyper-parameters under ``run["hparams"]``, keeping keys not given here.

        Args:
            params: Nested mapping of plain values; other values are stored as text.
        """
        if self._run is None:
            return
        for key, value in params.items():
            self._run["hparams", str(key)] = _plain(value)

    def track(self, metrics: Mapping[str, float], step: int) -> None:
        """Record finite metric values at ``step`` (re-tracking a step overwrites it).

        Args:
            metrics: Metric name -> value; nan and infinities are skipped.
            step: Environment step.
        """
        if self._run is None:
            return
        values = {name: float(value) for name, value in metrics.items()}
        finite = {name: value for name, value in values.items() if math.isfinite(value)}
        if finite:
            # One call writes all series in a single batch.
            self._run.track(finite, step=int(step))

    def close(self) -> None:
        """Finish the run (sets its end time, releases its lock); idempotent."""
        if self._run is None:
            return
        run, self._run = self._run, None
        _open_runs.discard(self._key)
        run.close()


def open_tracker(
    config: TrackingConfig,
    experiment_name: str,
    log_dir: Path,
    hparams: dict[str, Any],
    run_hash: str | None = None,
) -> Tracker:
    """Open the tracker a run's tracking configuration asks for.

    Args:
        config: The ``[tracking]`` section of the experiment.
        experiment_name: Name of the experiment; the Aim experiment unless
            ``config.experiment`` names another.
        log_dir: Root of run directories; the repository is ``log_dir / "aim"``
            unless ``config.repo`` names one.
        hparams: Hyper-parameters stored with the run (the resolved experiment).
        run_hash: Aim run of the checkpoint being resumed; its series continue.

    Returns:
        A :class:`NullTracker` when tracking is disabled, else an :class:`AimTracker`.

    Raises:
        PamiqxError: The Aim repository cannot be opened.
    """
    if not config.enabled:
        return NullTracker()
    repo = Path(config.repo) if config.repo else Path(log_dir) / "aim"
    return AimTracker(
        repo,
        experiment=config.experiment or experiment_name,
        hparams=hparams,
        run_hash=run_hash,
        system_metrics=config.system_metrics,
    )


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

    _replace_aim_exit_hook()
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


def _open_run(repo_path: Path, experiment: str, run_hash: str | None, system_metrics: bool) -> Any:
    """Open (or create) the repository and start or continue a run in it."""
    import filelock
    from aim.sdk.errors import RunLockingError
    from aim.sdk.repo import Repo
    from aim.sdk.run import Run

    _replace_aim_exit_hook()
    kwargs: dict[str, Any] = {
        "repo": str(repo_path),
        "experiment": experiment,
        # Aim would otherwise copy everything printed (a live progress display
        # redraws 4 times a second) into the run and patch sys.stdout/stderr.
        "capture_terminal_logs": False,
        "log_system_params": False,
    }
    if not system_metrics:
        kwargs["system_tracking_interval"] = None
    try:
        repo_path.mkdir(parents=True, exist_ok=True)
        # Runs started together (a comparison of several curiosities) would race to
        # create the repository: one process at a time initialises it.
        with filelock.FileLock(str(repo_path) + ".init.lock", timeout=300):
            # The equivalent of `aim init`; from_path keeps the Repo for the Run below.
            repo = Repo.from_path(str(repo_path), init=not Repo.exists(str(repo_path)))
            if run_hash is None or not repo.run_exists(run_hash):
                return Run(**kwargs)
        if (str(repo_path), run_hash) in _open_runs:
            raise PamiqxError(
                f"The Aim run {run_hash} in {repo_path} is already open in this process; "
                "close its tracker before opening it again."
            )
        _check_run_lock(repo_path, run_hash)
        return Run(run_hash, **kwargs)
    except PamiqxError:
        raise
    except (filelock.Timeout, RunLockingError) as exc:
        raise PamiqxError(_in_use_message(repo_path, run_hash or "", str(exc))) from exc
    except Exception as exc:
        raise PamiqxError(
            f"Cannot open the Aim repository at {repo_path}: {exc!r}. Check that the "
            "folder is writable and holds an Aim repository; if it is corrupt, move it away "
            "(a fresh one is created), point tracking.repo at another folder, or turn "
            "tracking off with tracking.enabled=false."
        ) from exc


def _check_run_lock(repo_path: Path, run_hash: str) -> None:
    """Fail fast when another process on this machine writes the run; drop a stale lock.

    aim removes a lock whose process is gone, but a restarted container often gives
    the new process the id of the killed one, and aim would then fail on the lock.
    This process does not hold it (the run would be in ``_open_runs``), so such a
    lock is stale; deleting it is what aim does for a dead process.

    Raises:
        PamiqxError: A live process of this machine holds the run.
    """
    lock_file = repo_path / ".aim" / "locks" / f"{run_hash}.softlock"
    try:
        machine, pid_text, *_ = lock_file.read_text().split("-")
        same_machine, pid = int(machine) == uuid.getnode(), int(pid_text)
    except (OSError, ValueError):
        return  # no lock, or one aim reads its own way
    if not same_machine:
        return
    if pid == os.getpid():
        lock_file.unlink(missing_ok=True)
    elif _process_exists(pid):
        raise PamiqxError(_in_use_message(repo_path, run_hash, f"process {pid} holds it"))


def _process_exists(pid: int) -> bool:
    """Whether a process with this id runs (signal 0 checks without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    return True


def _in_use_message(repo_path: Path, run_hash: str, detail: str) -> str:
    """The error text for a run another process writes."""
    return (
        f"The Aim run {run_hash} in {repo_path} is in use by another process ({detail}). "
        "Stop that process; if none is running, release the run with `aim runs --repo "
        f"{repo_path} close {run_hash}` and start again."
    )


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


def _plain(value: Any) -> Any:
    """``value`` with containers made dicts and lists and other objects made text.

    Aim stores only plain values; paths, enums and the like become their text.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


def _replace_aim_exit_hook() -> None:
    """Run aim's exit-time cleanup without the thread Python 3.12 refuses to start.

    ``aim.ext.cleanup.AutoClean`` registers ``AutoClean.cleanup`` with atexit the
    first time an aim object needing cleanup is made. That callback runs the
    cleanup in a new thread (so a second Ctrl-C cannot interrupt it), and Python
    3.12 raises ``RuntimeError: can't create new thread at interpreter shutdown``:
    the cleanup never ran and the traceback was printed on every exit. Here aim's
    callback is unregistered (and aim told it is registered, so it does not add it
    again) and :func:`_finalize_aim_resources` does the same work on the exiting
    thread. Safe: aim's finalizers are ``weakref.finalize`` objects, which run at
    most once, so objects already closed (every tracker closes its run) are skipped.
    """
    global _exit_hook_replaced
    if _exit_hook_replaced:
        return
    from aim.ext.cleanup import AutoClean

    if not callable(getattr(AutoClean, "_cleanup", None)):
        return  # another aim version: leave its own hook alone
    atexit.unregister(AutoClean.cleanup)
    AutoClean._registered_with_atexit = True
    atexit.register(_finalize_aim_resources)
    _exit_hook_replaced = True


def _finalize_aim_resources() -> None:
    """Close aim objects still open at exit (runs not closed, repositories)."""
    from aim.ext.cleanup import AutoClean

    cleanup: Callable[[], None] = AutoClean._cleanup
    try:
        cleanup()
    except KeyboardInterrupt:
        # Finalizers run once: a second pass finishes those the interrupt skipped.
        cleanup()
