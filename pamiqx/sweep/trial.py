"""One Ray Tune trial: an ordinary pamiqx run, resumed from its own latest checkpoint.

:func:`sweep_trial` is the Tune function trainable of ``pamiqx sweep``. On every
attempt (the first, a retry after a failure or a lost node, or a resumed sweep)
it looks at the trial's folder first (:mod:`pamiqx.sweep.state`): a run that
finished all its steps is reported again and not rerun; a run with a
checkpoint continues with ``--resume latest``; otherwise the run starts afresh.
The run itself is :mod:`pamiqx.sweep.child`, whose progress lines become Tune
results (``step``, ``coverage``, ``rate``...), so that the driver's table and
ASHA see them. A run that ends with a non-zero exit code raises
:class:`TrialFailed`, which Tune retries up to ``resources.max_failures`` times.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from pamiqx.sweep import state
from pamiqx.sweep.expand import TrialSpec

__all__ = ["RunOutcome", "TrialFailed", "execute", "result_metrics", "sweep_trial"]

RATE = "perf/steps_per_second"


class TrialFailed(RuntimeError):
    """A trial's run ended with a non-zero exit code (Tune retries it)."""


@attrs.frozen
class RunOutcome:
    """How one run of a trial ended.

    Attributes:
        result: The last metrics (``step``, ``coverage``...).
        skipped: The run had already finished; nothing ran.
        resumed: The run continued from a checkpoint.
    """

    result: dict[str, Any]
    skipped: bool
    resumed: bool


def result_metrics(step: int, metrics: dict[str, float]) -> dict[str, Any]:
    """Return what a trial reports to Tune for one batch of a run's metrics.

    Every metric of the run, with ``step``, and ``rate`` for the steps per second.
    """
    reported: dict[str, Any] = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    reported["step"] = step
    if RATE in metrics:
        reported["rate"] = metrics[RATE]
    return reported


def _node() -> str:
    """Return the Ray node this trial runs on, or "" outside Ray (tests, benchmarks)."""
    import ray

    # Asking for the runtime context outside a session would start a local Ray.
    if not ray.is_initialized():
        return ""
    return str(ray.get_runtime_context().get_node_id())


def execute(
    experiment: str,
    overrides: Sequence[str],
    log_root: Path,
    name: str,
    max_steps: int,
    report: Callable[[dict[str, Any]], None],
    workdir: str | None = None,
) -> RunOutcome:
    """Run (or resume, or skip) one pamiqx run and report its progress.

    Args:
        experiment: The experiment file.
        overrides: Its overrides (``run.log_dir`` among them is ``log_root``).
        log_root: The run's folder.
        name: The experiment's name.
        max_steps: The run's ``run.max_steps``.
        report: Called with each batch of metrics (:func:`result_metrics`).
        workdir: The run's working directory (None: this process's).

    Returns:
        How the run ended.

    Raises:
        TrialFailed: The run ended with a non-zero exit code.
    """
    log_root.mkdir(parents=True, exist_ok=True)
    done = state.finished_run(log_root, name, max_steps)
    if done is not None:
        result = state.read_result(log_root) or {"step": max_steps}
        state.append_attempt(log_root, node=_node(), host=socket.gethostname(), skipped=str(done))
        report(result)
        return RunOutcome(result, skipped=True, resumed=False)
    resumed = state.has_checkpoint(log_root, name)
    if not resumed:
        state.remove_unresumable(log_root, name)
    attempt = state.append_attempt(
        log_root, node=_node(), host=socket.gethostname(), pid=os.getpid(), resumed=resumed
    )
    read_end, write_end = os.pipe()
    command = [
        sys.executable,
        "-m",
        "pamiqx.sweep.child",
        "--progress-fd",
        str(write_end),
        "--parent-pid",
        str(os.getpid()),
        *(["--resume", "latest"] if resumed else []),
        experiment,
        *overrides,
    ]
    log_path = log_root / state.TRIAL_LOG
    with log_path.open("a") as log:
        log.write(f"\n=== attempt {attempt} on {socket.gethostname()} at {time.ctime()}")
        log.write(f" ({'resumed from its latest checkpoint' if resumed else 'new run'}) ===\n")
        log.flush()
        try:
            child = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
                pass_fds=(write_end,),
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            os.close(write_end)
        last: dict[str, Any] = {}
        code: int | None = None
        with os.fdopen(read_end) as progress:
            for line in progress:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if "exit" in record:
                    code = int(record["exit"])
                elif "step" in record:
                    last = result_metrics(int(record["step"]), record.get("metrics", {}))
                    report(last)
        returncode = child.wait()
    code = returncode if code is None or returncode != 0 else code
    if code != 0:
        raise TrialFailed(f"the run exited with code {code}; its output is in {log_path}")
    state.write_result(log_root, last)
    return RunOutcome(last, skipped=False, resumed=resumed)


def sweep_trial(config: dict[str, Any]) -> None:
    """The Tune function trainable of ``pamiqx sweep``: one trial, one run.

    Args:
        config: ``{"trial": TrialSpec.to_config()}``.
    """
    from ray import tune

    spec = TrialSpec.from_config(config["trial"])

    def report(metrics: dict[str, Any]) -> None:
        tune.report(dict(metrics))

    execute(
        spec.experiment,
        spec.overrides,
        Path(spec.log_root),
        spec.name,
        spec.max_steps,
        report,
        spec.workdir,
    )
