"""Run directories, atomic checkpoints, and finding what to resume.

Layout of a run directory ``<log_dir>/<name>/<timestamp>/``::

    experiment.toml          the resolved experiment (every default filled in)
    events.jsonl             start, checkpoint, resume, end events with times
    checkpoints/step-000000012000/
        state.pt             torch.save of tensors and plain values only
        meta.json            step, experiment name, versions, sha256 of state.pt

A checkpoint is written into a hidden temporary folder, flushed to disk, and
renamed into place, so a folder named ``step-*`` with a ``meta.json`` is
always complete; a crash mid-write leaves only a temporary folder, ignored and
cleaned later. Checkpoints load with ``torch.load(weights_only=True)``: a
checkpoint cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pamiqx.api.errors import CheckpointError

FORMAT_VERSION = 1
_PREFIX = "step-"


def log_root(configured: str) -> Path:
    """Return where run directories go: ``run.log_dir``, ``$PAMIQX_LOG_DIR`` or ``./logs``."""
    return Path(configured or os.environ.get("PAMIQX_LOG_DIR") or "logs")


def create_run_dir(root: Path, name: str) -> Path:
    """Create ``root/name/<timestamp>/`` (suffixed when two runs start in one second)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = root / name
    try:
        base.mkdir(parents=True, exist_ok=True)
        for suffix in ["", *[f"-{i}" for i in range(1, 1000)]]:
            path = base / f"{stamp}{suffix}"
            try:
                path.mkdir()
            except FileExistsError:
                continue
            (path / "checkpoints").mkdir()
            return path
    except OSError as error:
        raise CheckpointError(
            f"cannot create a run directory under {base} ({error.strerror}); set run.log_dir "
            "or PAMIQX_LOG_DIR to a writable folder."
        ) from None
    raise CheckpointError(f"{base}: cannot create a new run directory.")


def log_event(run_dir: Path, kind: str, **data: Any) -> None:
    """Append one event line to ``events.jsonl``."""
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "event": kind, **data}
    with (run_dir / "events.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def to_safe(value: Any) -> Any:
    """Convert numpy arrays and scalars inside a state tree to tensors and Python values."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: to_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_safe(v) for v in value)
    return value


def to_numpy(value: Any) -> Any:
    """Inverse of :func:`to_safe` for states that expect numpy arrays (environments)."""
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, Mapping):
        return {k: to_numpy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_numpy(v) for v in value)
    return value


def _fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_step(path: Path) -> int | None:
    """Return the step encoded in a checkpoint folder name, or None."""
    if not path.name.startswith(_PREFIX):
        return None
    try:
        return int(path.name[len(_PREFIX) :])
    except ValueError:
        return None


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Return the complete checkpoints of a run, oldest first."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [
        p
        for p in folder.iterdir()
        if checkpoint_step(p) is not None and (p / "meta.json").is_file()
    ]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0)


def save_checkpoint(
    run_dir: Path, step: int, state: Mapping[str, Any], meta: Mapping[str, Any], keep: int
) -> Path:
    """Write a checkpoint atomically and keep only the latest ``keep``.

    Args:
        run_dir: The run directory.
        step: Environment steps the state holds.
        state: Tensors and plain values (numpy is converted).
        meta: Extra metadata (experiment name, Aim run hash, ...).
        keep: How many checkpoints to keep.

    Returns:
        The checkpoint folder.
    """
    folder = run_dir / "checkpoints"
    folder.mkdir(exist_ok=True)
    final = folder / f"{_PREFIX}{step:012d}"
    tmp = folder / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(to_safe(dict(state)), tmp / "state.pt")
    _fsync_file(tmp / "state.pt")
    info = {
        "format": FORMAT_VERSION,
        "step": step,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "state_sha256": _sha256(tmp / "state.pt"),
        **meta,
    }
    (tmp / "meta.json").write_text(json.dumps(info, indent=2))
    _fsync_file(tmp / "meta.json")
    _fsync_dir(tmp)
    if final.exists():  # the same step saved twice (e.g. a signal right after a periodic save)
        shutil.rmtree(final)
    tmp.rename(final)
    _fsync_dir(folder)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in folder.glob(".tmp-*"):
        if not stale.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(stale, ignore_errors=True)
    return final


def read_meta(path: Path) -> dict[str, Any]:
    """Read and check a checkpoint's ``meta.json``.

    Raises:
        CheckpointError: Missing, unreadable or not a pamiqx checkpoint.
    """
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise CheckpointError(
            f"{path}: not a pamiqx checkpoint (no meta.json); pass a checkpoint folder "
            "(checkpoints/step-...), a run directory, or 'latest'."
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{meta_path}: unreadable checkpoint metadata: {error}.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION or "step" not in meta:
        raise CheckpointError(
            f"{path}: not a pamiqx checkpoint of format {FORMAT_VERSION} "
            f"(meta.json says {meta!r:.120})."
        )
    return meta


def load_checkpoint(path: Path, experiment_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load a checkpoint safely and check that it belongs to this experiment.

    Args:
        path: The checkpoint folder.
        experiment_name: The experiment being resumed.

    Returns:
        ``(state, meta)``.

    Raises:
        CheckpointError: Foreign, corrupt or truncated checkpoint.
    """
    meta = read_meta(path)
    if meta.get("experiment") != experiment_name:
        raise CheckpointError(
            f"{path}: this checkpoint belongs to experiment '{meta.get('experiment')}', not "
            f"'{experiment_name}'; resume it with its own experiment file."
        )
    state_path = path / "state.pt"
    if not state_path.is_file() or _sha256(state_path) != meta.get("state_sha256"):
        raise CheckpointError(
            f"{path}: state.pt is missing or corrupt (its checksum does not match meta.json); "
            "resume from an earlier checkpoint of the run."
        )
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError) as error:
        raise CheckpointError(
            f"{path}: state.pt cannot be loaded safely ({type(error).__name__}: {error})."
        ) from None
    return state, meta


def find_checkpoint(target: str, root: Path, experiment_name: str) -> Path:
    """Find the checkpoint ``--resume`` means.

    Args:
        target: ``latest``, a checkpoint folder, or a run directory.
        root: The log root.
        experiment_name: The experiment's name (``latest`` looks under ``root/name``).

    Returns:
        A checkpoint folder.

    Raises:
        CheckpointError: Nothing to resume.
    """
    if target == "latest":
        base = root / experiment_name
        runs = (
            sorted((p for p in base.iterdir() if p.is_dir()), reverse=True) if base.is_dir() else []
        )
        for run_dir in runs:
            checkpoints = list_checkpoints(run_dir)
            if checkpoints:
                return checkpoints[-1]
        raise CheckpointError(
            f"--resume latest: no checkpoint of experiment '{experiment_name}' under {base}."
        )
    path = Path(target)
    if not path.exists():
        raise CheckpointError(f"--resume {target}: no such file or folder.")
    if (path / "meta.json").is_file():
        return path
    checkpoints = list_checkpoints(path)
    if checkpoints:
        return checkpoints[-1]
    raise CheckpointError(
        f"--resume {target}: neither a checkpoint folder nor a run directory with checkpoints."
    )
