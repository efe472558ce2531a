"""One experiment run, end to end: run directory, plugins, resume, tracking, loop, summary."""

from __future__ import annotations

import random
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from pamiqx import __version__
from pamiqx.api.environment import Environment
from pamiqx.api.errors import CheckpointError, EnvironmentUnavailableError, PamiqxError
from pamiqx.checkpoint import (
    create_run_dir,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
    log_event,
    log_root,
    save_checkpoint,
    to_numpy,
)
from pamiqx.display import ProgressDisplay, make_display
from pamiqx.experiment import ResolvedExperiment
from pamiqx.faults import (
    PluginFault,
    PluginIdentity,
    TrainingDiverged,
    blame,
    non_finite_tensors,
    summarise,
)
from pamiqx.plugins.manager import PluginManager
from pamiqx.runtime.build import Components, build_components, build_environments, resolve_device
from pamiqx.runtime.lockstep import LockstepLoop
from pamiqx.runtime.signals import StopRequest, stop_on_signals
from pamiqx.tracking import Tracker, open_tracker

EXIT_INTERRUPTED = {"SIGINT": 130, "SIGTERM": 143}
SUMMARY_METRICS = ("coverage", "reward/intrinsic", "episode_return")


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = to_numpy(state["numpy"])
    np.random.set_state(tuple(np_state))
    py_state = state["python"]
    random.setstate((py_state[0], tuple(py_state[1]), py_state[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Run:
    """Holds a run's pieces and turns them into (and back from) checkpoint state."""

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
            "models": {role: m.state_dict() for role, m in self.c.models.items()},
            "curiosity": curiosity,
            "learner": self.c.learner.state_dict(),
            "collector": self.c.collector.state_dict(),
            "envs": self.c.worlds.state_dict(),
            "rng": _rng_state(),
            "first_metrics": dict(self.first_metrics),
            "last_logged": self.last_logged,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (raises :class:`CheckpointError` on a mismatch)."""
        try:
            for role, module in self.c.models.items():
                module.load_state_dict(state["models"][role])
            self.c.curiosity.load_state_dict(state["curiosity"])
            self.c.learner.load_state_dict(state["learner"])
            self.c.collector.load_state_dict(state["collector"])
            for env, env_state in zip(self.c.envs, state["envs"], strict=True):
                env.load_state_dict(to_numpy(env_state))
            _set_rng_state(state["rng"])
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CheckpointError(
                f"the checkpoint does not fit this experiment's models or plugins "
                f"({type(error).__name__}: {error}); was the experiment file changed?"
            ) from None
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
        learned = {k: state[k] for k in ("models", "curiosity", "learner")}
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


def _set_up(env: Environment, resolved: ResolvedExperiment) -> None:
    """Set an environment up, naming the plugin when a device or connection is missing."""
    try:
        env.setup()
    except PamiqxError:
        raise
    except (OSError, RuntimeError, ConnectionError, TimeoutError) as error:
        entry = resolved.environment.entry
        raise EnvironmentUnavailableError(
            f"environment '{entry.name}' ({entry.distribution} {entry.version}) could not start: "
            f"{type(error).__name__}: {error}"
        ) from error
    except Exception as error:
        who = PluginIdentity.of("environment", resolved.environment.entry)
        raise who.fault("setup()", summarise(error)) from error


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


def _write_experiment_file(run_dir: Path, resolved: ResolvedExperiment, step: int) -> None:
    text = resolved.to_toml()
    path = run_dir / "experiment.toml"
    if not path.exists():
        path.write_text(text)
    elif path.read_text() != text:
        # A resumed run with changed settings keeps both files.
        (run_dir / f"experiment.resumed-at-{step}.toml").write_text(text)


def summary_lines(run: Run, seconds: float, status: str) -> list[str]:
    """Return the end-of-run summary: where the run is and how it went."""
    done = run.step - run.started_at_step
    lines = [
        f"run {status}: {run.exp.name}",
        f"  run directory: {run.run_dir}",
        f"  steps: {run.step:,} / {run.exp.run.max_steps:,} "
        f"({done:,} this session in {seconds:.1f} s, {done / max(seconds, 1e-9):,.0f} steps/s)",
    ]
    for key in SUMMARY_METRICS:
        if key in run.last_metrics:
            first = run.first_metrics.get(key, float("nan"))
            lines.append(f"  {key}: {first:.4g} at start -> {run.last_metrics[key]:.4g} at end")
    if run.tracker.run_hash:
        lines.append(
            f"  aim run: {run.tracker.run_hash} (make aim, then open http://127.0.0.1:43800)"
        )
    return lines


def run_experiment(
    resolved: ResolvedExperiment,
    manager: PluginManager,
    resume: str | None = None,
    console: Console | None = None,
) -> int:
    """Run (or resume) an experiment to ``run.max_steps``.

    Args:
        resolved: The validated experiment.
        manager: The plugin registry (for lifecycle hooks).
        resume: ``latest``, a checkpoint folder or a run directory.
        console: Where the display and the summary go (stdout by default).

    Returns:
        0 when finished, 130/143 when stopped by SIGINT/SIGTERM (after a checkpoint).
    """
    exp = resolved.experiment
    console = console or Console()
    resolve_device(exp.run.device)  # a missing GPU is reported before anything is written
    root = log_root(exp.run.log_dir)
    state: dict[str, Any] | None = None
    meta: dict[str, Any] = {}
    if resume:
        checkpoint = find_checkpoint(resume, root, exp.name)
        state, meta = load_checkpoint(checkpoint, exp.name)
        run_dir = checkpoint.parent.parent
    else:
        run_dir = create_run_dir(root, exp.name)
    _write_experiment_file(run_dir, resolved, int(meta.get("step", 0)))

    started: list[Environment] = []
    try:
        try:
            envs = build_environments(resolved, torch.device("cpu"), run_dir)
            for env in envs:
                _set_up(env, resolved)
                started.append(env)
            components = build_components(resolved, envs, run_dir)
            tracker = open_tracker(
                exp.tracking, exp.name, root, resolved.to_dict(), run_hash=meta.get("aim_run_hash")
            )
        except PamiqxError:
            if state is None:  # a run that never started leaves no empty run directory behind
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        try:
            return _drive(resolved, components, run_dir, tracker, manager, state, console)
        finally:
            tracker.close()
    finally:
        for env in started:
            env.teardown()


def _drive(
    resolved: ResolvedExperiment,
    components: Components,
    run_dir: Path,
    tracker: Tracker,
    manager: PluginManager,
    state: dict[str, Any] | None,
    console: Console,
) -> int:
    exp = resolved.experiment
    start_step = int(state["step"]) if state is not None else 0
    display = make_display(exp.name, exp.run.max_steps, start_step=start_step, console=console)
    run = Run(resolved, components, run_dir, tracker, display, manager)
    if state is not None:
        run.load_state_dict(state)
        log_event(run_dir, "resume", step=run.step)
    else:
        # Where the metrics are: `pamiqx compare RUN_DIR` reads them from here.
        repo = getattr(tracker, "repo", None)
        log_event(
            run_dir,
            "start",
            step=0,
            device=str(components.device),
            aim_repo=None if repo is None else str(repo),
            aim_run_hash=tracker.run_hash,
        )
    plain = resolved.to_dict()
    for error in manager.call_lifecycle(
        "pamiqx_experiment_start", experiment=plain, run_dir=run_dir
    ):
        console.print(f"plugin hook failed: {error}", markup=False)
    stop = StopRequest()
    started = time.perf_counter()
    status = "failed"
    reason: str | None = None
    realtime = exp.run.mode == "realtime" or (
        exp.run.mode == "auto" and components.envs[0].realtime
    )
    try:
        with display, stop_on_signals(stop):
            if realtime:
                from pamiqx.runtime.realtime import run_realtime

                run_realtime(
                    components,
                    run.step,
                    exp.run.max_steps,
                    exp.run.time_scale,
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
    finally:
        log_event(run_dir, "end", step=run.step, status=status, reason=reason)
        manager.call_lifecycle(
            "pamiqx_experiment_end", experiment=plain, run_dir=run_dir, status=status
        )
    for line in summary_lines(run, time.perf_counter() - started, status):
        console.print(line, markup=False, highlight=False)
    sys.stdout.flush()
    return 0 if not stop else EXIT_INTERRUPTED.get(stop.reason or "", 1)
