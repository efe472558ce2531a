"""Run directories, atomic checkpoints, and finding what to resume.

Layout of a run directory ``<log_dir>/<name>/<timestamp>/``::

    experiment.toml          the resolved experiment (every default filled in)
    events.jsonl             start (a branch's names its origin), checkpoint, resume, end
    checkpoints/step-000000012000/
        state.pt             torch.save of tensors and plain values only
        meta.json            step, experiment name, versions, sha256 of state.pt

A checkpoint is written into a hidden temporary folder, flushed to disk, and
renamed into place, so a folder named ``step-*`` with a ``meta.json`` is
always complete; a crash mid-write leaves only a temporary folder, ignored and
cleaned later, and a write that fails (a full disk) removes it and raises a
:class:`CheckpointError` with the OS's reason. Checkpoints load with
``torch.load(weights_only=True)``: a checkpoint cannot run code; ``meta.json``
fields and the state's type are checked, naming what is wrong.

Only the latest checkpoint of a run continues in its run directory
(:func:`run_dir_to_continue`); resuming any other starts a new one (see
:mod:`pamiqx.runtime.startup`), so later checkpoints are never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

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
    """Append one event line to ``events.jsonl``.

    Raises:
        CheckpointError: The file cannot be written (a full disk, say).
    """
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "event": kind, **data}
    path = run_dir / "events.jsonl"
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as error:
        raise CheckpointError(
            f"cannot record the {kind} event in {path}: {error.strerror or error}."
        ) from error


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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, write: Callable[[BinaryIO], object]) -> None:
    # Through a Python file, so a full disk is an OSError with its errno rather than
    # the C++ stream error torch raises when it opens the path itself.
    with path.open("wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


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


def _why_not_written(error: BaseException, folder: Path) -> str:
    """Say why a checkpoint write failed: the OS reason, or torch's, and the free space."""
    if isinstance(error, OSError) and error.strerror:
        reason = error.strerror
    else:
        text = " ".join(str(error).split())
        reason = f"{type(error).__name__}: {text}" if text else type(error).__name__
    try:
        free = shutil.disk_usage(folder).free / 2**30
    except OSError:
        return reason
    return f"{reason} ({free:.2f} GiB free on that disk)"


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

    Raises:
        CheckpointError: It could not be written (a full disk, say); its temporary
            folder is removed and the checkpoints already there are untouched.
    """
    folder = run_dir / "checkpoints"
    final = folder / f"{_PREFIX}{step:012d}"
    tmp = folder / f".tmp-{final.name}-{os.getpid()}"
    try:
        folder.mkdir(exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        safe = to_safe(dict(state))
        _write_synced(tmp / "state.pt", lambda f: torch.save(safe, f))
        info = {
            "format": FORMAT_VERSION,
            "step": step,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "state_sha256": _sha256(tmp / "state.pt"),
            **meta,
        }
        text = json.dumps(info, indent=2).encode()
        _write_synced(tmp / "meta.json", lambda f: f.write(text))
        _fsync_dir(tmp)
        _replace(tmp, final)
        _fsync_dir(folder)
    except Exception as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"cannot write the checkpoint {final}: {_why_not_written(error, folder)}; "
            "its unfinished copy was removed."
        ) from error
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in folder.glob(".tmp-*"):
        if not stale.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(stale, ignore_errors=True)
    return final


def _replace(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; one already there (the same step saved twice) goes last."""
    if not final.exists():
        tmp.rename(final)
        return
    old = final.with_name(f".tmp-old-{final.name}-{os.getpid()}")
    final.rename(old)
    try:
        tmp.rename(final)
    except OSError:
        old.rename(final)
        raise
    shutil.rmtree(old, ignore_errors=True)


_JSON_TYPES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
_JSON_TYPES |= {list: "an array", dict: "an object", type(None): "null"}


# Fields every checkpoint's meta.json has, and their JSON types.
_META_FIELDS: dict[str, type] = {"step": int, "experiment": str, "state_sha256": str}


def read_meta(path: Path) -> dict[str, Any]:
    """Read and check a checkpoint's ``meta.json``.

    Raises:
        CheckpointError: Missing, unreadable, not a pamiqx checkpoint, or a field
            missing or of the wrong type (named).
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
    if not isinstance(meta, dict):
        shown = _JSON_TYPES.get(type(meta), "a value")
        raise CheckpointError(
            f"{meta_path}: holds {shown}, not an object: not a pamiqx checkpoint's metadata."
        )
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: not a pamiqx checkpoint of format {FORMAT_VERSION} "
            f"(meta.json says {meta!r:.120})."
        )
    problems = [f"'{key}' is missing" for key in _META_FIELDS if key not in meta]
    for key, kind in _META_FIELDS.items():
        value = meta.get(key)
        if key in meta and (type(value) is not kind or (isinstance(value, int) and value < 0)):
            expected = "a non-negative integer" if kind is int else _JSON_TYPES[kind]
            shown = _JSON_TYPES.get(type(value), "a value")
            problems.append(f"'{key}' is {shown} ({value!r:.40}), not {expected}")
    folder_step = checkpoint_step(path)
    if not problems and folder_step is not None and folder_step != meta["step"]:
        problems.append(f"'step' is {meta['step']} but the folder is named for step {folder_step}")
    if problems:
        raise CheckpointError(
            f"{meta_path}: {'; '.join(problems)}. The checkpoint cannot be resumed; resume from "
            "another checkpoint of the run."
        )
    return meta


def load_checkpoint(path: Path, experiment_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load a checkpoint safely and check that it belongs to this experiment.

    Args:
        path: The checkpoint folder.
        experiment_name: The experiment being resumed.

    Returns:
        ``(state, meta)``; ``state`` is a dict whose ``step`` matches ``meta``'s.

    Raises:
        CheckpointError: Foreign, corrupt, truncated or malformed checkpoint.
    """
    meta = read_meta(path)
    if meta["experiment"] != experiment_name:
        raise CheckpointError(
            f"{path}: this checkpoint belongs to experiment '{meta['experiment']}', not "
            f"'{experiment_name}'; resume it with its own experiment file."
        )
    state_path = path / "state.pt"
    if not state_path.is_file() or _sha256(state_path) != meta["state_sha256"]:
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
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path}: state.pt holds a {type(state).__name__}, not the dict of a run's state."
        )
    if type(state.get("step")) is not int or state["step"] != meta["step"]:
        raise CheckpointError(
            f"{path}: state.pt holds step {state.get('step')!r:.40} but meta.json says "
            f"{meta['step']}."
        )
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


def run_dir_around(checkpoint: Path) -> Path | None:
    """Return the run directory a checkpoint folder sits in, or None for a copy kept elsewhere."""
    run_dir = checkpoint.parent.parent
    if checkpoint.parent.name == "checkpoints" and (
        (run_dir / "events.jsonl").is_file() or (run_dir / "experiment.toml").is_file()
    ):
        return run_dir
    return None


def run_dir_to_continue(checkpoint: Path) -> Path | None:
    """Return the run directory a checkpoint is the latest of, or None.

    None for a copy kept elsewhere, or when its run has a later checkpoint: continuing
    there would overwrite that history, so the caller starts a new run directory.
    """
    run_dir = run_dir_around(checkpoint)
    latest = list_checkpoints(run_dir)[-1:] if run_dir is not None else []
    return run_dir if latest and latest[0].resolve() == checkpoint.resolve() else None
