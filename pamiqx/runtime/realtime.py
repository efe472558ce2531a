"""Real-time mode on pamiq-core: the world is stepped at a fixed rate while training runs.

pamiq-core's ``launch`` owns three threads: the inference thread, the training
thread, which runs :class:`~pamiqx.runtime.realtime_trainer.PPOTrainer` whenever
a full rollout was handed over, and the calling thread, the control thread,
which pauses the other two for checkpoints. Where acting runs is
``run.acting`` (:mod:`pamiqx.runtime.acting_arrangements`):

* ``process`` (the default): the world's beat, encoding and the policy run in
  a process of their own with a CPU of their own
  (:mod:`pamiqx.runtime.acting_process`); the inference thread stores the steps
  it sends (:mod:`pamiqx.runtime.remote`), and the trainer publishes weights
  through shared memory. On a CPU the process is forked; with CUDA (a CUDA
  context does not survive a fork) it is spawned and builds its own world and
  networks on the device (:mod:`pamiqx.runtime.acting_spawn`);
* ``thread``: the inference thread itself keeps the beat
  (:class:`~pamiqx.runtime.ticks.TickedInteraction`: observe a budget before
  each tick, infer, send the action at the tick) with a copy of the policy the
  trainer syncs under a lock.

Two deliberate departures from pamiq-core defaults, both for safety of data:
acting's copy of the policy is synced by the trainer (instead of
``TorchTrainingModel``, which swaps module objects and would invalidate the
learner's optimizer), and pamiq-core's own state folders (which hold pickles)
are only a trigger: while the threads are paused, pamiqx writes its own
checkpoint and removes pamiq-core's folder, so resuming never unpickles.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import attrs
import torch
from pamiq_core import LaunchConfig, launch
from pamiq_core.data.impls import SequentialBuffer
from pamiq_core.state_persistence import StatesKeeper

from pamiqx.api.errors import PamiqxError
from pamiqx.experiment import ResolvedExperiment
from pamiqx.runtime.acting_arrangements import (
    ActingInputs,
    ProcessSettings,
    process_side,
    thread_side,
)
from pamiqx.runtime.acting_process import split_cpus
from pamiqx.runtime.build import Components
from pamiqx.runtime.realtime_agent import ROLLOUTS, RealtimeAgent
from pamiqx.runtime.realtime_trainer import PPOTrainer
from pamiqx.runtime.realtime_world import Failure
from pamiqx.runtime.signals import StopRequest
from pamiqx.runtime.ticks import tick_metrics

__all__ = ["Failure", "PPOTrainer", "RealtimeAgent", "RealtimeSettings", "run_realtime"]

# Seconds a thread holds the GIL before another may take it, during a thread-mode run.
GIL_SWITCH_INTERVAL = 0.0002


class _CheckpointOnSave(StatesKeeper):
    """Turns pamiq-core's paused save into a pamiqx checkpoint and drops pamiq's folder."""

    def __init__(self, checkpoint: Callable[[], object]) -> None:
        super().__init__()
        self._checkpoint = checkpoint

    def append(self, path: Path) -> None:
        # Called by the control thread while the other threads are paused.
        self._checkpoint()
        shutil.rmtree(path, ignore_errors=True)

    def select_removal_states(self) -> Iterable[Path]:
        return []


@attrs.frozen
class RealtimeSettings:
    """How a real-time run keeps its beat (the ``run`` table's real-time keys).

    Attributes:
        time_scale: pamiq-core time scale (1 for a real world).
        budget: Wall-clock seconds before each tick at which its observation is taken
            (inference does not speed up with the time scale; at most half the control
            interval is used).
        max_staleness: Optimizer steps the acting policy may lag (0: synced after each
            training phase only).
        acting: ``process``: acting in its own process (:mod:`pamiqx.runtime.acting_process`);
            ``thread``: in pamiq-core's inference thread of this process.
        acting_start: How that process starts: ``fork``, ``spawn`` (it builds its own
            world and networks: :mod:`pamiqx.runtime.acting_spawn`), or ``auto``: fork
            on a CPU, spawn with CUDA.
    """

    time_scale: float = 1.0
    budget: float = 0.015
    max_staleness: int = 0
    acting: Literal["process", "thread"] = "process"
    acting_start: Literal["auto", "fork", "spawn"] = "auto"

    def start_method(self, device: torch.device) -> Literal["fork", "spawn"]:
        """Return how the acting process starts on ``device``.

        Raises:
            PamiqxError: ``fork`` was asked for on CUDA.
        """
        cuda = device.type == "cuda"
        if self.acting_start == "fork" and cuda:
            raise PamiqxError(
                "run.acting_start = 'fork' cannot act on CUDA: a CUDA context does not "
                "survive a fork. Use 'auto' or 'spawn' (or run.acting = 'thread')."
            )
        if self.acting_start == "auto":
            return "spawn" if cuda else "fork"
        return self.acting_start


def run_realtime(
    resolved: ResolvedExperiment,
    components: Components,
    start_step: int,
    max_steps: int,
    settings: RealtimeSettings,
    run_dir: Path,
    stop: StopRequest,
    on_step: Callable[[int], None],
    on_phase: Callable[[int, dict[str, float]], None],
    checkpoint_due: Callable[[], bool],
    checkpoint: Callable[[], object],
) -> None:
    """Run a real-time world with pamiq-core until ``max_steps`` or a stop request.

    Args:
        resolved: The experiment (a spawned acting process builds its side from it).
        components: Worlds (exactly one), collector, curiosity and learner.
        start_step: Steps already done.
        max_steps: Steps to reach.
        settings: Time scale, inference budget, staleness bound, where acting runs.
        run_dir: The run directory (pamiq-core's transient state folders go under it).
        stop: Set by signals; ends the run at the next control tick.
        on_step: Called after each step (inference thread).
        on_phase: Called after each training phase (training thread).
        checkpoint_due: Whether a periodic checkpoint is due.
        checkpoint: Writes a periodic checkpoint (threads paused).

    Raises:
        BaseException: Whatever an agent or trainer step raised.
    """
    [env] = components.envs
    interval = env.control_interval or 0.1
    budget = min(settings.budget * settings.time_scale, interval / 2)
    # The first optimizer step imports torch._dynamo while holding the GIL (~3 s):
    # do it now so the inference thread never stalls on it.
    import torch._dynamo

    failure = Failure()
    in_process = settings.acting == "process"
    acting_cpu, training_cpus = split_cpus() if in_process else (None, None)
    inputs = ActingInputs(
        components, start_step, max_steps, on_step, failure, interval, budget, checkpoint
    )
    if in_process:
        how = ProcessSettings(
            settings.start_method(components.device),
            settings.time_scale,
            acting_cpu,
            resolved,
            run_dir,
        )
        side = process_side(inputs, how)
    else:
        side = thread_side(inputs)

    def timing() -> dict[str, float]:
        return {**side.agent.timing(), **tick_metrics(side.interaction.take_stats())}

    trainer = PPOTrainer(
        components, side.link, on_phase, timing, side.evaluation, failure, settings.max_staleness
    )
    side.agent.staleness = side.staleness

    def control_tick() -> bool:
        # Runs in the control thread at every tick; raising KeyboardInterrupt is
        # pamiq-core's clean shutdown path (threads joined, nothing lost).
        if stop or side.agent.finished.is_set() or failure.error is not None:
            raise KeyboardInterrupt
        return checkpoint_due()

    states_dir = run_dir / ".pamiq-core-states"
    states_dir.mkdir(exist_ok=True)
    threads = torch.get_num_threads()
    affinity = os.sched_getaffinity(0) if training_cpus is not None else None
    switch_interval = sys.getswitchinterval()
    try:
        side.start()
        if training_cpus is not None:
            # The acting process has a CPU of its own; training and the storing of
            # records share the others (pamiq-core's threads inherit this).
            os.sched_setaffinity(0, training_cpus)
            torch.set_num_threads(max(1, min(threads, len(training_cpus))))
        else:
            # Training's intra-op threads would take every core and delay the inference
            # thread's steps: leave it one (2 cores, `python -m bench realtime`: p99
            # jitter 5.5-6.8 ms before, 3.0-5.4 ms after, over three runs each).
            torch.set_num_threads(max(1, threads - 1))
            # A thread that wakes for its tick waits for the GIL up to the switch
            # interval (5 ms by default) while the training thread runs Python
            # (`python -m bench.beat --seconds 30`, quickstart at 10 Hz: 10 overruns of
            # 291 and jitter p99 8.9 ms at 1 ms, 1 and 3.7 ms at 0.2 ms).
            sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        with failure.quiet_threads():
            _launch(
                side.interaction,
                trainer,
                states_dir,
                control_tick,
                side.checkpoint,
                settings.time_scale,
            )
    finally:
        torch.set_num_threads(threads)
        sys.setswitchinterval(switch_interval)
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
    shutil.rmtree(states_dir, ignore_errors=True)
    if failure.error is not None:
        raise failure.error


def _launch(
    interaction: Any,
    trainer: PPOTrainer,
    states_dir: Path,
    control_tick: Callable[[], bool],
    checkpoint: Callable[[], object],
    time_scale: float,
) -> None:
    launch(
        interaction,
        models={},
        buffers={ROLLOUTS: SequentialBuffer[Any](max_size=2)},
        trainers={"ppo": trainer},
        config=LaunchConfig(
            states_dir=states_dir,
            save_state_condition=control_tick,
            states_keeper=_CheckpointOnSave(checkpoint),
            web_api_address=None,
            time_scale=time_scale,
        ),
    )
