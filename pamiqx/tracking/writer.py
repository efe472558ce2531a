"""Writing a run's hyper-parameters and metrics: the :class:`Tracker` kinds, :func:`open_tracker`.

aim is imported inside the functions that need it: importing this module is cheap.
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pamiqx.api.errors import PamiqxError
from pamiqx.tracking.exit_hook import replace_aim_exit_hook
from pamiqx.tracking.run_list import forget_cached_run_list

if TYPE_CHECKING:
    from pamiqx.experiment import TrackingConfig

__all__ = ["AimTracker", "NullTracker", "Tracker", "open_tracker", "prepare_repository"]

# Runs this process holds open, as (repository path, run hash): opening one twice
# would wait on aim's own lock for 10 s before failing.
_open_runs: set[tuple[str, str]] = set()
# Repositories being opened on a background thread (prepare_repository), by path.
_preparing: dict[str, threading.Thread] = {}


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
    return AimTracker(
        _repo_path(config, log_dir),
        experiment=config.experiment or experiment_name,
        hparams=hparams,
        run_hash=run_hash,
        system_metrics=config.system_metrics,
    )


def _repo_path(config: TrackingConfig, log_dir: Path) -> Path:
    """The repository a run's tracking writes to (``log_dir / "aim"`` unless named)."""
    repo = Path(config.repo) if config.repo else Path(log_dir) / "aim"
    return repo.expanduser().absolute()


def prepare_repository(config: TrackingConfig, log_dir: Path) -> threading.Thread | None:
    """Start importing aim and opening the run's repository on a background thread.

    Opening a repository costs seconds (the import, and aim's database migration in
    a subprocess) that overlap with building the run's components when started
    early; :func:`open_tracker` then waits for it and finds the repository ready.
    Only the repository is opened here (creating it when missing, as ``aim init``
    does), never a run: a start-up that fails leaves no run behind. A failure here
    is left for :func:`open_tracker` to meet again and report.

    Args:
        config: The ``[tracking]`` section; nothing happens when tracking is disabled.
        log_dir: Root of run directories.

    Returns:
        The thread (join it before the process exits, so that a start-up that fails
        never leaves a half-created repository), or None when tracking is disabled.
    """
    if not config.enabled:
        return None
    repo_path = _repo_path(config, log_dir)
    if str(repo_path) in _preparing:
        return _preparing[str(repo_path)]
    thread = threading.Thread(
        target=_open_repository, args=(repo_path,), name="aim-repository", daemon=True
    )
    _preparing[str(repo_path)] = thread
    thread.start()
    return thread


def _open_repository(repo_path: Path) -> None:
    """Open (creating when missing) the repository; aim keeps it for the runs opened later."""
    try:
        with _init_lock(repo_path):
            _repository(repo_path)
    except Exception:  # noqa: BLE001 - open_tracker opens it again and reports the error
        return


def _init_lock(repo_path: Path) -> Any:
    """The lock under which one process at a time opens (and may create) the repository.

    Runs started together (a comparison of several curiosities) would otherwise race
    to create it.
    """
    import filelock

    repo_path.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(str(repo_path) + ".init.lock", timeout=300)


def _repository(repo_path: Path) -> Any:
    """Open the repository, creating it when missing (``aim init``); call under the lock.

    ``Repo.from_path`` keeps the repository for the runs this process opens later.
    """
    from aim.sdk.repo import Repo

    repo = Repo.from_path(str(repo_path), init=not Repo.exists(str(repo_path)))
    forget_cached_run_list()  # a run this process just finished must be found
    return repo


def _open_run(repo_path: Path, experiment: str, run_hash: str | None, system_metrics: bool) -> Any:
    """Open (or create) the repository and start or continue a run in it."""
    # First wait for the preparation: two threads importing aim at once deadlock on
    # its circular imports.
    preparing = _preparing.pop(str(repo_path), None)
    if preparing is not None:
        preparing.join()
    import filelock
    from aim.sdk.errors import RunLockingError
    from aim.sdk.run import Run

    replace_aim_exit_hook()
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
        with _init_lock(repo_path):
            repo = _repository(repo_path)
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
