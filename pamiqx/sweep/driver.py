"""Running a sweep on Ray: the session, the Tuner (new or restored), the exit code.

Storage layout (``<storage>``, a shared filesystem on a cluster)::

    plan.json            the validated trials (a resumed sweep must expand to the same)
    runs/<trial>/        each trial's run.log_dir: run directories, trial.log, attempts.jsonl
    aim/                 the one Aim repository of every run
    ray/                 Ray Tune's experiment state (what --resume restores)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from pamiqx.sweep.errors import SweepError
from pamiqx.sweep.expand import REALTIME_RESOURCE, TrialSpec
from pamiqx.sweep.spec import Resources

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "PLAN",
    "RAY_DIR",
    "check_cluster",
    "check_storage",
    "ray_session",
    "run_trials",
    "trial_resources",
    "write_plan",
]

PLAN = "plan.json"
RAY_DIR = "ray"
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def check_storage(storage: Path, trials: Sequence[TrialSpec], resume: bool) -> bool:
    """Check the storage folder against ``--resume`` (:func:`write_plan` records a new sweep).

    Args:
        storage: The sweep's storage folder.
        trials: The validated trials.
        resume: ``--resume`` was given.

    Returns:
        True when an earlier sweep is continued.

    Raises:
        SweepError: The folder holds a sweep and ``--resume`` was not given, or it
            holds another sweep (other trials).
    """
    plan = storage / PLAN
    planned = [t.to_config() for t in trials]
    if not plan.exists():
        return False
    if not resume:
        raise SweepError(
            f"{storage}: holds a sweep already; `--resume` continues it (finished runs are "
            "skipped), or choose another --storage."
        )
    try:
        old = json.loads(plan.read_text())
    except (OSError, ValueError) as error:
        raise SweepError(f"{plan}: cannot read the sweep's plan: {error}.") from None
    if old != planned:
        old_keys = {str(t.get("key")) for t in old if isinstance(t, dict)}
        changed = sorted({t.key for t in trials} ^ old_keys) or sorted(
            t.key for t in trials if t.to_config() not in old
        )
        raise SweepError(
            f"{storage}: the sweep there has other trials than this file expands to "
            f"(differing: {', '.join(changed[:5])}); resume it with the same sweep file "
            "and overrides, or choose another --storage."
        )
    return True


def write_plan(storage: Path, trials: Sequence[TrialSpec]) -> None:
    """Record the trials of a new sweep in its storage folder."""
    storage.mkdir(parents=True, exist_ok=True)
    (storage / PLAN).write_text(json.dumps([t.to_config() for t in trials], indent=1))


def trial_resources(resources: Resources) -> Callable[[dict[str, Any]], Any]:
    """Return the per-trial resource request: CPUs, GPUs, and ``realtime_world``.

    A trial of a real-time world asks for one ``realtime_world``; a node offers
    one, so at most one such trial runs per machine.
    """
    from ray.tune import PlacementGroupFactory

    def request(config: dict[str, Any]) -> PlacementGroupFactory:
        bundle: dict[str, float] = {"CPU": resources.cpus}
        if resources.gpus:
            bundle["GPU"] = resources.gpus
        if config.get("trial", {}).get("realtime"):
            bundle[REALTIME_RESOURCE] = 1
        return PlacementGroupFactory([bundle])

    return request


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Connect to Ray: an embedded local instance, or the cluster at ``address``.

    The local instance offers one ``realtime_world``; a cluster's nodes declare
    theirs (``ray start --resources '{"realtime_world": 1}'``). A session that
    was already started (by a test or a notebook) is used as it is.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(resources={REALTIME_RESOURCE: 1}, include_dashboard=False, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise SweepError(f"--address: cannot connect to {where}: {error}") from None
    try:
        yield
    finally:
        ray.shutdown()


def check_cluster(trials: Sequence[TrialSpec], resources: Resources) -> None:
    """Fail early when no node could ever run a trial (it would wait forever).

    Raises:
        SweepError: Too few CPUs or GPUs on every node, or no ``realtime_world``.
    """
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    need = {"CPU": resources.cpus, "GPU": resources.gpus}
    if any(t.realtime for t in trials):
        need[REALTIME_RESOURCE] = 1
    if any(all(node.get(k, 0) >= v for k, v in need.items() if v) for node in nodes):
        return
    offered = "; ".join(
        ", ".join(f"{k}={v:g}" for k, v in sorted(node.items()) if "node:" not in k)
        for node in nodes
    )
    realtime = [t.key for t in trials if t.realtime]
    hint = (
        f" Trials {', '.join(realtime[:3])} run a real-time world and need a node started with "
        f"--resources '{{\"{REALTIME_RESOURCE}\": 1}}'."
        if realtime
        else ""
    )
    asked = ", ".join(f"{k}={v:g}" for k, v in need.items() if v)
    raise SweepError(
        f"no Ray node offers what one trial asks for ({asked}); "
        f"nodes offer: {offered or 'nothing'}.{hint} Lower [resources] in the sweep file."
    )


def _trial_name(trial: Any) -> str:
    return str(trial.config["trial"]["key"])


def run_trials(
    trials: Sequence[TrialSpec],
    resources: Resources,
    storage: Path,
    trainable: Callable[[dict[str, Any]], None],
    console: Console,
    plain: bool,
) -> int:
    """Run every trial with Ray Tune (continuing Tune's saved state when there is one).

    Args:
        trials: The validated trials.
        resources: Per-trial resources, concurrency and retries.
        storage: The storage folder.
        trainable: The trial function (:func:`pamiqx.sweep.trial.sweep_trial`).
        console: Where the table and the summary go.
        plain: Plain lines instead of a live table.

    Returns:
        0 when every trial finished, 1 when one failed, 130 when interrupted.
    """
    from ray import tune

    from pamiqx.sweep.progress import Progress, ProgressCallback, showing

    # Tune's own reporter stays quiet: the table is ours.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    wrapped = tune.with_resources(trainable, trial_resources(resources))
    path = str(storage / RAY_DIR)
    if tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, wrapped, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            wrapped,
            param_space={"trial": tune.grid_search([t.to_config() for t in trials])},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=resources.max_concurrent or None,
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
                # A trial's run is a process of its own (isolated, its memory freed at
                # exit); the Ray worker that starts it is reused, saving its start-up.
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=RAY_DIR,
                storage_path=str(storage),
                failure_config=tune.FailureConfig(max_failures=resources.max_failures),
                callbacks=[ProgressCallback()],
                verbose=0,
            ),
        )
    progress = Progress(trials, console, plain)
    with showing(progress):
        results = tuner.fit()
    for index in range(len(results)):
        result = results[index]
        key = (result.config or {}).get("trial", {}).get("key")
        row = progress.rows.get(key) if key else None
        if row is None:
            continue
        if result.error is not None and row.status != "failed":
            row.status, row.error = "failed", str(result.error).strip().splitlines()[-1][:300]
        elif (
            result.error is None
            and int((result.metrics or {}).get("step", 0)) >= row.spec.max_steps
        ):
            # Finished, maybe before this session (a resumed sweep does not rerun it).
            progress.result(row.spec.key, result.metrics or {})
            row.status = "finished"
    for line in progress.summary_lines():
        console.print(line, markup=False, highlight=False)
    statuses = {row.status for row in progress.rows.values()}
    if statuses <= {"finished"}:
        return 0
    if statuses <= {"finished", "failed"}:
        return EXIT_FAILED
    console.print(
        "the sweep stopped before every trial ended; `pamiqx sweep SWEEP.toml --resume` "
        "continues it.",
        markup=False,
        highlight=False,
    )
    return EXIT_INTERRUPTED
