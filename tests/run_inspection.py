"""Helpers to damage and inspect runs in probes (faulty plugins: ``tests.misbehaving``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def rewrite_state(checkpoint: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    """Replace a checkpoint's state by ``change(state)``, with a checksum that matches it."""
    path = checkpoint / "state.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    torch.save(change(state), path)
    meta = json.loads((checkpoint / "meta.json").read_text())
    meta["state_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (checkpoint / "meta.json").write_text(json.dumps(meta))


def rewrite_meta(checkpoint: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    """Replace a checkpoint's ``meta.json`` by ``change(meta)`` (state.pt is left alone)."""
    meta = json.loads((checkpoint / "meta.json").read_text())
    (checkpoint / "meta.json").write_text(json.dumps(change(meta)))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Return every file under ``folder`` with its bytes (to show nothing was written)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def events(run_dir: Path) -> list[dict[str, Any]]:
    """Return a run directory's ``events.jsonl`` records."""
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def flat(out: str) -> str:
    """Return command output on one line (rich wraps long messages)."""
    return " ".join(out.split())


def runs(logs: Path, name: str = "tiny") -> list[Path]:
    """Return the run directories of experiment ``name`` under ``logs``."""
    return sorted((logs / name).iterdir()) if (logs / name).is_dir() else []
