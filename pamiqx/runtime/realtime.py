"""Real-time mode on pamiq-core: the world is stepped at a fixed rate while training runs.

pamiq-core's ``launch`` owns three threads: the inference thread steps the
world through :class:`RealtimeAgent` on a fixed beat of ``control_interval``
seconds (:class:`~pamiqx.runtime.ticks.TickedInteraction`: observe a budget
before each tick, infer, send the action at the tick), the training thread runs
:class:`PPOTrainer` whenever the agent hands over a full rollout, and the
calling thread is the control thread, which pauses the other two for checkpoints.

Two deliberate departures from pamiq-core defaults, both for safety of data:
the policy's inference copy is synced by the trainer under a lock (instead of
``TorchTrainingModel``, which swaps module objects and would invalidate the
learner's optimizer), and pamiq-core's own state folders (which hold pickles)
are only a trigger: while the threads are paused, pamiqx writes its own
checkpoint and removes pamiq-core's folder, so resuming never unpickles.
"""

from __future__ import annotations

import copy
import shutil
import sys
import threading
import time as wall
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from pamiq_core import Agent, LaunchConfig, Trainer, launch
from pamiq_core import Environment as CoreEnvironment
from pamiq_core.data.impls import SequentialBuffer
from pamiq_core.state_persistence import StatesKeeper

from pamiqx.api.environment import EnvStep
from pamiqx.learner.batch import RolloutBatch
from pamiqx.runtime.agent import PolicyAgent
from pamiqx.runtime.build import Components
from pamiqx.runtime.collector import Collector
from pamiqx.runtime.signals import StopRequest
from pamiqx.runtime.ticks import TickedInteraction, tick_metrics
from pamiqx.runtime.training import train_phase
from pamiqx.runtime.worlds import Worlds

ROLLOUTS = "rollouts"
# Seconds a thread holds the GIL before another may take it, during a real-time run.
GIL_SWITCH_INTERVAL = 0.0002


class RealtimeEnvironment(CoreEnvironment[EnvStep, npt.NDArray[np.int64]]):
    """A pamiqx environment seen by pamiq-core (its hooks run in the inference thread)."""

    def __init__(self, worlds: Worlds, failure: Failure) -> None:
        """Wrap the (single) world of a run, already set up."""
        super().__init__()
        [self.env] = worlds.envs
        self.worlds = worlds
        self.failure = failure

    def observe(self) -> EnvStep:
        """Return the current observation, checked against the world's spec."""
        with self.failure.recorded():
            return self.worlds.observe_one(self.env)

    def affect(self, action: npt.NDArray[np.int64]) -> None:
        """Apply the action."""
        with self.failure.recorded():
            self.worlds.affect_one(self.env, action)

    def on_paused(self) -> None:
        """Release inputs while paused (for VRChat: the avatar stops)."""
        super().on_paused()
        self.env.on_paused()

    def on_resumed(self) -> None:
        """Resume after a pause."""
        super().on_resumed()
        self.env.on_resumed()


class Failure:
    """The first exception raised in a pamiq-core thread, re-raised by the caller."""

    def __init__(self) -> None:
        """Start with no failure."""
        self.error: BaseException | None = None

    def record(self, error: BaseException) -> None:
        """Keep the first error."""
        if self.error is None:
            self.error = error

    @contextmanager
    def recorded(self) -> Iterator[None]:
        """Record an exception raised in the block (then let it end the thread)."""
        try:
            yield
        except BaseException as error:
            self.record(error)
            raise


class RealtimeAgent(Agent[EnvStep, npt.NDArray[np.int64]]):
    """Acts with the inference copy of the policy and hands full rollouts to the trainer."""

    def __init__(
        self,
        collector: Collector,
        lock: threading.Lock,
        start_step: int,
        max_steps: int,
        on_step: Callable[[int], None],
        failure: Failure,
        noop_action: npt.NDArray[np.int64],
    ) -> None:
        """Create the agent side.

        Args:
            collector: Collects with the inference copy of the policy (restored on resume).
            lock: Guards the inference copy against the trainer's sync.
            start_step: Steps already done.
            max_steps: Steps after which the agent only sends no-op actions.
            on_step: Called with the step count after each step.
            failure: Where an exception is recorded.
            noop_action: The action sent once ``max_steps`` is reached.
        """
        super().__init__()
        self.collector = collector
        self.lock = lock
        self.step_count = start_step
        self.max_steps = max_steps
        self.on_step = on_step
        self.failure = failure
        self.noop = noop_action
        self.finished = threading.Event()
        self.latencies: list[float] = []
        # Optimizer steps the acting policy lags at each action (set by the runner).
        self.staleness: Callable[[], int] = lambda: 0
        self.lags: list[int] = []

    def on_data_collectors_attached(self) -> None:
        """Keep the rollout collector (pamiq-core hands it out once)."""
        super().on_data_collectors_attached()
        self.rollouts = self.get_data_collector(ROLLOUTS)

    def step(self, observation: EnvStep) -> npt.NDArray[np.int64]:
        """Record the outcome of the last action, then choose the next one."""
        started = wall.perf_counter()
        try:
            action = self._step(observation)
        except BaseException as error:
            self.failure.record(error)
            self.finished.set()
            raise
        self.latencies.append(wall.perf_counter() - started)
        return action

    def _step(self, observation: EnvStep) -> npt.NDArray[np.int64]:
        obs = observation.observation[None]
        start = np.array([observation.episode_start])
        if self.collector.pending:
            reward = np.array([observation.reward], dtype=np.float32)
            with self.lock:
                batch = self.collector.complete(obs, reward, start)
            self.step_count += 1
            self.on_step(self.step_count)
            if batch is not None:
                self.rollouts.collect((self.step_count, batch))
        if self.step_count >= self.max_steps:
            self.finished.set()
            return self.noop
        with self.lock:
            actions = self.collector.act(obs, start)
            self.lags.append(self.staleness())
        return np.asarray(actions[0], dtype=np.int64)

    def timing(self) -> dict[str, float]:
        """Return and reset inference times (milliseconds, wall clock) and acting's lag."""
        latencies, self.latencies = self.latencies, []
        lags, self.lags = self.lags, []
        out: dict[str, float] = {}
        if latencies:
            out["realtime/step_latency_ms_p50"] = 1e3 * float(np.percentile(latencies, 50))
            out["realtime/step_latency_ms_p99"] = 1e3 * float(np.percentile(latencies, 99))
        if lags:
            out["realtime/staleness_steps_mean"] = float(np.mean(lags))
            out["realtime/staleness_steps_max"] = float(max(lags))
        return out


class PPOTrainer(Trainer):
    """Trains on each rollout the agent hands over, then syncs the inference policy.

    Attributes:
        synced_at: The learner's optimizer steps when the acting copy was last synced.
    """

    def __init__(
        self,
        components: Components,
        inference_policy: torch.nn.Module,
        lock: threading.Lock,
        on_phase: Callable[[int, dict[str, float]], None],
        timing: Callable[[], dict[str, float]],
        failure: Failure,
        max_staleness: int = 0,
    ) -> None:
        """Create the trainer; it trains when at least one new rollout arrived.

        Args:
            components: The run's components (the learner trains ``components.policy``).
            inference_policy: The acting copy, synced from the trained policy.
            lock: Guards the acting copy.
            on_phase: Called with the step and metrics after each phase.
            timing: Returns the real-time statistics gathered since the last phase.
            failure: Where an exception is recorded.
            max_staleness: Optimizer steps after which the acting copy is synced even
                inside a phase (0: after each phase only).
        """
        super().__init__(training_condition_data_user=ROLLOUTS, min_new_data_count=1)
        self.c = components
        self.inference_policy = inference_policy
        self.lock = lock
        self.on_phase = on_phase
        self.timing = timing
        self.failure = failure
        self.max_staleness = max_staleness
        learner = components.learner
        self.synced_at = learner.gradient_steps
        if max_staleness > 0:
            learner.after_step = self._sync_if_stale

    def staleness(self) -> int:
        """Optimizer steps the acting copy lags the trained policy."""
        return self.c.learner.gradient_steps - self.synced_at

    def _sync(self) -> None:
        with self.lock:
            self.inference_policy.load_state_dict(self.c.policy.state_dict())
            self.synced_at = self.c.learner.gradient_steps

    def _sync_if_stale(self) -> None:
        if self.staleness() >= self.max_staleness:
            self._sync()

    def train(self) -> None:
        """Train on the newest rollout (older ones, if any, were superseded)."""
        try:
            data: list[tuple[int, RolloutBatch]] = self.get_data_user(ROLLOUTS).get_data()
            step, batch = data[-1]
            started = wall.perf_counter()
            metrics = train_phase(
                batch.to(self.c.device),
                self.c.curiosity,
                self.c.learner,
                self.c.who["curiosity"],
                self.c.stage,
            )
            self._sync()
            metrics["perf/train_seconds"] = wall.perf_counter() - started
            metrics.update(self.timing())
            metrics.update(self.c.worlds.evaluation_metrics())
            self.on_phase(step, metrics)
        except BaseException as error:
            self.failure.record(error)
            raise


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


def run_realtime(
    components: Components,
    start_step: int,
    max_steps: int,
    time_scale: float,
    budget: float,
    max_staleness: int,
    run_dir: Path,
    stop: StopRequest,
    on_step: Callable[[int], None],
    on_phase: Callable[[int, dict[str, float]], None],
    checkpoint_due: Callable[[], bool],
    checkpoint: Callable[[], object],
) -> None:
    """Run a real-time world with pamiq-core until ``max_steps`` or a stop request.

    Args:
        components: Worlds (exactly one), collector, curiosity and learner.
        start_step: Steps already done.
        max_steps: Steps to reach.
        time_scale: pamiq-core time scale (1 for a real world).
        budget: Wall-clock seconds before each tick at which its observation is taken
            (inference does not speed up with the time scale; at most half the control
            interval is used).
        max_staleness: Optimizer steps the acting policy may lag (0: synced after each
            training phase only).
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
    # The first optimizer step imports torch._dynamo while holding the GIL (~3 s):
    # do it now so the inference thread never stalls on it.
    import torch._dynamo

    lock = threading.Lock()
    acting_policy = copy.deepcopy(components.policy).eval()
    acting = PolicyAgent(
        acting_policy,
        components.curiosity,
        1,
        components.device,
        components.collector.agent.precision,
    )
    # Full rollouts go to the training thread on the CPU, one transfer per rollout.
    collector = Collector(
        acting, components.collector.make_rollout, torch.device("cpu"), components.stage
    )
    collector.load_state_dict(components.collector.state_dict())
    components.collector = collector
    failure = Failure()
    spec = env.action_spec
    noop = np.zeros(() if spec.kind == "discrete" else (len(spec.nvec),), dtype=np.int64)
    agent = RealtimeAgent(collector, lock, start_step, max_steps, on_step, failure, noop)
    # A budget near the interval would leave no time between an action and the next
    # observation: the world would be observed before it could respond.
    interaction = TickedInteraction(
        agent,
        RealtimeEnvironment(components.worlds, failure),
        interval,
        min(budget * time_scale, interval / 2),
    )

    def timing() -> dict[str, float]:
        return {**agent.timing(), **tick_metrics(interaction.take_stats())}

    trainer = PPOTrainer(components, acting_policy, lock, on_phase, timing, failure, max_staleness)
    agent.staleness = trainer.staleness

    def control_tick() -> bool:
        # Runs in the control thread at every tick; raising KeyboardInterrupt is
        # pamiq-core's clean shutdown path (threads joined, nothing lost).
        if stop or agent.finished.is_set() or failure.error is not None:
            raise KeyboardInterrupt
        return checkpoint_due()

    states_dir = run_dir / ".pamiq-core-states"
    states_dir.mkdir(exist_ok=True)
    # Training's intra-op threads would take every core and delay the inference
    # thread's steps: leave it one (2 cores, `python -m bench realtime`: p99 jitter
    # 5.5-6.8 ms before, 3.0-5.4 ms after, over three runs each).
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads - 1))
    # A thread that wakes for its control tick waits for the GIL up to the switch
    # interval (5 ms by default) while the training thread runs Python, and inference
    # waits that long for each of its many small torch calls: shorten it
    # (`python -m bench realtime`, p99 jitter over three runs: 2.7/5.4/6.3 ms at 5 ms,
    # 3.0/3.9/5.6 ms at 1 ms; `python -m bench.beat --seconds 30`, quickstart at
    # 10 Hz: 10 overruns of 291 and jitter p99 8.9 ms at 1 ms, 1 and 3.7 ms at 0.2 ms;
    # reference/adversarial-maze: jitter p99 10.9 ms at 1 ms, 2.8 ms at 0.2 ms).
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    try:
        _launch(interaction, trainer, states_dir, control_tick, checkpoint, time_scale)
    finally:
        torch.set_num_threads(threads)
        sys.setswitchinterval(switch_interval)
    shutil.rmtree(states_dir, ignore_errors=True)
    if failure.error is not None:
        raise failure.error


def _launch(
    interaction: TickedInteraction[EnvStep, npt.NDArray[np.int64]],
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
