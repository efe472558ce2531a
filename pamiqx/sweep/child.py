"""The process of one trial's run: ``pamiqx run`` with its progress written to a pipe.

``python -m pamiqx.sweep.child --progress-fd FD [--resume latest] FILE KEY=VALUE...``
does what ``pamiqx run`` does (:func:`pamiqx.runtime.session.run_experiment`),
in a process of its own: the run installs its signal handlers, which only the
main thread of a process may do (a Ray trial runs in a worker thread), and a
SIGTERM makes it write a checkpoint. Each batch of metrics the run emits is a
JSON line on ``FD``; the process ends with the run's exit code (2 for a user
error, its message on stderr). It asks Linux to send it SIGTERM when the trial
that started it dies, so that a lost trial leaves no run behind.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
from typing import IO, Any

from pamiqx.api.errors import PamiqxError
from pamiqx.api.hooks import hookimpl

USER_ERROR_EXIT = 2
_PR_SET_PDEATHSIG = 1


class ProgressWriter:
    """A lifecycle hook implementation: every metrics batch as one JSON line."""

    def __init__(self, stream: IO[str]) -> None:
        """Write to ``stream`` (the pipe the trial reads)."""
        self.stream = stream

    @hookimpl
    def pamiqx_metrics_emitted(self, step: int, metrics: dict[str, float]) -> None:
        """Send the step and metrics of one logged training phase."""
        self.write({"step": step, "metrics": {k: float(v) for k, v in metrics.items()}})

    def write(self, record: dict[str, Any]) -> None:
        """Write one record and flush it."""
        try:
            self.stream.write(json.dumps(record) + "\n")
            self.stream.flush()
        except (BrokenPipeError, OSError):
            pass  # the trial is gone; the run goes on to its checkpoint


def _die_with_parent(parent: int) -> None:
    """SIGTERM this process when the thread that started it ends (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    """Run one experiment; return its exit code."""
    parser = argparse.ArgumentParser(prog="python -m pamiqx.sweep.child")
    parser.add_argument("--progress-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--resume", default=None)
    parser.add_argument("experiment")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    if args.parent_pid:
        _die_with_parent(args.parent_pid)
    from pathlib import Path

    from rich.console import Console

    from pamiqx.experiment import load_experiment
    from pamiqx.plugins.manager import load_plugins
    from pamiqx.runtime.session import run_experiment

    progress = ProgressWriter(os.fdopen(args.progress_fd, "w"))
    try:
        manager = load_plugins()
        resolved = load_experiment(Path(args.experiment), args.overrides, manager)
        manager.hooks.register(progress, name="pamiqx-sweep-progress")
        code = run_experiment(resolved, manager, resume=args.resume, console=Console(emoji=False))
    except PamiqxError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        code = USER_ERROR_EXIT
    progress.write({"exit": code})
    return code


if __name__ == "__main__":
    sys.exit(main())
