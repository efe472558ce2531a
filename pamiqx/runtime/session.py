"""One experiment run, end to end: start-up, resume or branch, tracking, loop, summary."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from pamiqx import __version__
from pamiqx.api.environment import Environment
from pamiqx.api.errors import CheckpointError, PamiqxError
from pamiqx.checkpoint import list_checkpoints, log_event, log_root, save_checkpoint
from pamiqx.display import ProgressDisplay, make_display
from pamiqx.experiment import ResolvedExperiment
from pamiqx.faults import PluginFault, TrainingDiverged, blame, non_finite_tensors, summarise
from pamiqx.plugins.manager import PluginManager
from pamiqx.runtime.build import Components, build_components, build_environments, resolve_device
from pamiqx.runtime.lockstep import LockstepLoop
from pamiqx.runtime.restore import check_layout, restore, rng_state
from pamiqx.runtime.signals import StopRequest, stop_on_signals
from pamiqx.runtime.startup import (
    Place,
    StartupInterrupted,
    StartupSignals,
    choose_place,
    create_place,
    interrupted_message,
    set_up,
    startup_signals,
    write_experiment_file,
)
from pamiqx.runtime.summary import summary_lines
from pamiqx.runtime.worlds import Worlds
from pamiqx.tracking import Tracker, open_tracker, prepare_repository

EXIT_INTERRUPTED = {"SIGINT": 130, "SIGTERM": 143}


class Run:
    """Holds a run's pieces: checkpoints (restored by :mod:`pamiqx.runtime.restore`), metrics."""

    def __init__(
        self,
        resolved: ResolvedExperiment,
        components: Components,
        run_dir: Path,
        tracker: Tracker,
        display: ProgressDisplay,
        manager: PluginManager,
    ) -> None:
        """Wire the pieces together."""
        self.resolved = resolved
        self.exp = resolved.experiment
        self.c = components
        self.run_dir = run_dir
        self.tracker = tracker
        self.display = display
        self.manager = manager
        self.step = 0
        self.started_at_step = 0
        self.last_logged = 0
        self.last_checkpoint_step = 0
        self.first_metrics: dict[str, float] = {}
        self.last_metrics: dict[str, float] = {}

    # --- checkpoint state -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Return everything needed to continue this run exactly."""
        with blame(self.c.who["curiosity"], "state_dict()"):
            curiosity = self.c.curiosity.state_dict()
        return {
            "step": self.step,
            "representation": self.c.stage.state_dict(),
            "models": {role: m.state_dict() for role, m in self.c.models.items()},
            "curiosity": curiosity,
            "learner": self.c.learner.state_dict(),
            "collector": self.c.collector.state_dict(),
            "envs": self.c.worlds.state_dict(),
            "rng": rng_state(),
            "first_metrics": dict(self.first_metrics),
            "last_logged": self.last_logged,
        }

    def resume_counters(self, state: Mapping[str, Any]) -> None:
        """Continue the step and metric counters of a restored checkpoint's state."""
        self.step = self.started_at_step = int(state["step"])
        self.last_logged = int(state["last_logged"])
        self.last_checkpoint_step = self.step
        self.first_metrics = {k: float(v) for k, v in state["first_metrics"].items()}

    def checkpoint(self, reason: str) -> Path:
        """Save a checkpoint now and tell the display, the event log and the plugins.

        Raises:
            TrainingDiverged: A weight or optimiser value is nan or inf: nothing is
                written, so the last good checkpoint stays the latest.
        """
        start = time.perf_counter()
        state = self.state_dict()
        learned = {k: state[k] for k in ("representation", "models", "curiosity", "learner")}
        bad = non_finite_tensors(learned)
        if bad:
            shown = ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
            raise TrainingDiverged(
                f"nan or inf values in {shown} at step {self.step:,}: the {reason} checkpoint "
                "was not written."
            )
        path = save_checkpoint(
            self.run_dir,
            self.step,
            state,
            {
                "experiment": self.exp.name,
                "pamiqx_version": __version__,
                "aim_run_hash": self.tracker.run_hash,
                "reason": reason,
            },
            keep=self.exp.run.keep_checkpoints,
        )
        seconds = time.perf_counter() - start
        self.last_checkpoint_step = self.step
        log_event(self.run_dir, "checkpoint", step=self.step, path=str(path), reason=reason)
        self.tracker.track({"perf/checkpoint_seconds": seconds}, self.step)
        self.display.checkpoint(path, self.step)
        for error in self.manager.call_lifecycle(
            "pamiqx_checkpoint_saved", path=path, step=self.step
        ):
            self.display.message(f"plugin hook failed: {error}")
        return path

    # --- loop callbacks ---------------------------------------------------------------
    def on_step(self, step: int) -> None:
        """Advance the step counter and the display (cheap: called every step)."""
        self.step = step
        self.display.update(step, self.last_metrics)

    def on_phase(self, step: int, metrics: dict[str, float]) -> None:
        """Log the metrics of a training phase (tracker, display, plugins)."""
        self.step = step
        self.last_metrics = metrics
        if not self.first_metrics:
            self.first_metrics = dict(metrics)
        if step - self.last_logged >= self.exp.run.log_every or step >= self.exp.run.max_steps:
            self.tracker.track(metrics, step)
            self.last_logged = step
            for error in self.manager.call_lifecycle(
                "pamiqx_metrics_emitted", step=step, metrics=metrics
            ):
                self.display.message(f"plugin hook failed: {error}")
        self.display.update(step, metrics)

    def periodic_checkpoint(self) -> None:
        """Save a checkpoint if one is due."""
        if self.checkpoint_due():
            self.checkpoint("periodic")

    def checkpoint_due(self) -> bool:
        """Return True when ``checkpoint_every`` steps passed since the last checkpoint."""
        every = self.exp.run.checkpoint_every
        return bool(every) and self.step // every > self.last_checkpoint_step // every


def _stopped_by(error: PamiqxError, run: Run) -> str:
    """Name the step a run stopped at and its last good checkpoint in the error; return it."""
    if isinstance(error, PluginFault):
        error.at_step(run.step)
    latest = list_checkpoints(run.run_dir)
    kept = (
        f"its last good checkpoint, {latest[-1]}, is kept (`--resume latest` continues from it)"
        if latest
        else "it has no checkpoint yet"
    )
    message = f"{error} The run stopped at step {run.step:,}; {kept}."
    error.args = (message,)
    return message


def run_experiment(
    resolved: ResolvedExperiment,
    manager: PluginManager,
    resume: str | None = None,
    console: Console | None = None,
) -> int:
    """Run (or resume) an experiment to ``run.max_steps``.

    Resuming from the latest checkpoint of a run continues its run directory; from
    any other checkpoint it branches into a new one (:mod:`pamiqx.runtime.startup`).
    Start-up that ends before the first step, for any reason (a SIGINT or SIGTERM
    included), removes the run directory it created.

    Args:
        resolved: The validated experiment.
        manager: The plugin registry (for lifecycle hooks).
        resume: ``latest``, a checkpoint folder or a run directory.
        console: Where the display and the summary go (stdout by default).

    Returns:
        0 when finished, 130/143 when stopped by SIGINT/SIGTERM (after a checkpoint,
        or during start-up, when nothing was run).
    """
    exp = resolved.experiment
    console = console or Console()
    resolve_device(exp.run.device)  # a missing GPU is reported before anything is written
    root = log_root(exp.run.log_dir)
    stop = StopRequest()
    place = Place()
    started: list[Environment] = []
    worlds: Worlds | None = None
    tracker: Tracker | None = None
    preparing: threading.Thread | None = None
    with startup_signals(stop) as guard:
        try:
            place = choose_place(resolved, root, resume, check_layout)
            create_place(place, root, exp.name)
            assert place.run_dir is not None
            # aim's import and migration overlap with the build (~3 s of start-up).
            preparing = prepare_repository(exp.tracking, root)
            if place.created:
                write_experiment_file(place, resolved)
            envs = build_environments(resolved, torch.device("cpu"), place.run_dir)
            for env in envs:
                set_up(env, resolved)
                started.append(env)
            components = build_components(resolved, envs, place.run_dir)
            # From here the worlds tear themselves down (once, whoever asks first).
            started.clear()
            worlds = components.worlds
            if place.state is not None and place.source is not None:
                restore(components, place.state, place.source)
            if not place.created:
                write_experiment_file(place, resolved)
            # A branch starts its own Aim run; a continued run continues its own.
            run_hash = None if place.created else place.meta.get("aim_run_hash")
            tracker = open_tracker(exp.tracking, exp.name, root, resolved.to_dict(), run_hash)
            return _drive(resolved, components, place, tracker, manager, console, stop, guard)
        except StartupInterrupted as interrupted:
            _remove_unstarted(place, guard)
            message = interrupted_message(place, interrupted.signal_name)
            console.print(message, markup=False, highlight=False, soft_wrap=True)
            return EXIT_INTERRUPTED[interrupted.signal_name]
        except BaseException:
            _remove_unstarted(place, guard)
            raise
        finally:
            if preparing is not None:
                preparing.join()  # never leave a half-created repository behind
            if tracker is not None:
                tracker.close()
            for env in started:
                env.teardown()
            if worlds is not None:
                worlds.teardown()


def _remove_unstarted(place: Place, guard: StartupSignals) -> None:
    """Remove a run directory this session created when the first step was not reached."""
    if place.created and place.run_dir is not None and not guard.running:
        shutil.rmtree(place.run_dir, ignore_errors=True)


def _drive(
    resolved: ResolvedExperiment,
    components: Components,
    place: Place,
    tracker: Tracker,
    manager: PluginManager,
    console: Console,
    stop: StopRequest,
    guard: StartupSignals,
) -> int:
    exp = resolved.experiment
    assert place.run_dir is not None
    run_dir = place.run_dir
    state = place.state
    start_step = int(state["step"]) if state is not None else 0
    display = make_display(exp.name, exp.run.max_steps, start_step=start_step, console=console)
    run = Run(resolved, components, run_dir, tracker, display, manager)
    if state is not None:
        run.resume_counters(state)
    if state is not None and not place.created:
        log_event(run_dir, "resume", step=run.step)
    else:
        # Where the metrics are: `pamiqx compare RUN_DIR` reads them from here.
        repo = getattr(tracker, "repo", None)
        log_event(
            run_dir,
            "start",
            step=run.step,
            device=str(components.device),
            aim_repo=None if repo is None else str(repo),
            aim_run_hash=tracker.run_hash,
            **({"branched_from": place.branched_from()} if place.branched else {}),
        )
    plain = resolved.to_dict()
    status = "failed"
    reason: str | None = None
    started = time.perf_counter()
    realtime = exp.run.mode == "realtime" or (
        exp.run.mode == "auto" and components.envs[0].realtime
    )
    announced = False
    try:
        for error in manager.call_lifecycle(
            "pamiqx_experiment_start", experiment=plain, run_dir=run_dir
        ):
            console.print(f"plugin hook failed: {error}", markup=False)
        announced = True
        with stop_on_signals(stop), display:
            guard.running_now()  # from here a signal is a stop request, answered by a checkpoint
            if realtime:
                from pamiqx.runtime.realtime import RealtimeSettings, run_realtime

                settings = RealtimeSettings(
                    exp.run.time_scale,
                    exp.run.inference_budget_ms / 1e3,
                    exp.run.max_staleness,
                    exp.run.acting,
                    exp.run.acting_start,
                )
                run_realtime(
                    resolved,
                    components,
                    run.step,
                    exp.run.max_steps,
                    settings,
                    run_dir,
                    stop,
                    run.on_step,
                    run.on_phase,
                    run.checkpoint_due,
                    lambda: run.checkpoint("periodic"),
                )
            else:
                loop = LockstepLoop(
                    components,
                    exp.run.max_steps,
                    run.step,
                    run.on_phase,
                    run.on_step,
                    run.periodic_checkpoint,
                )
                loop.run(stop)
            if run.step != run.last_checkpoint_step:
                run.checkpoint("final" if not stop else f"signal {stop.reason}")
        status = "finished" if not stop else "interrupted"
    except PamiqxError as error:
        reason = _stopped_by(error, run)
        raise
    except Exception as error:
        reason = summarise(error)
        raise
    except StartupInterrupted as interrupted:
        status, reason = "interrupted", f"{interrupted.signal_name} during start-up"
        raise
    finally:
        if guard.running or not place.created:  # else the run directory is removed
            _log_end(run, status, reason, console)
        if announced:
            manager.call_lifecycle(
                "pamiqx_experiment_end", experiment=plain, run_dir=run_dir, status=status
            )
    for line in summary_lines(run, time.perf_counter() - started, status):
        console.print(line, markup=False, highlight=False)
    sys.stdout.flush()
    return 0 if not stop else EXIT_INTERRUPTED.get(stop.reason or "", 1)


def _log_end(run: Run, status: str, reason: str | None, console: Console) -> None:
    """Record the end event; a full disk must not hide the error that ended the run."""
    try:
        log_event(run.run_dir, "end", step=run.step, status=status, reason=reason)
    except CheckpointError as error:
        console.print(f"warning: {error}", markup=False)
