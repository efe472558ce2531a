"""The inference side of a real-time run: stores each step and hands full rollouts over."""

from __future__ import annotations

import threading
import time as wall
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from pamiq_core import Agent

from pamiqx.api.environment import EnvStep
from pamiqx.runtime.collector import Collector
from pamiqx.runtime.realtime_world import Failure

ROLLOUTS = "rollouts"


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
        action = self.store(observation)
        self.latencies.append(wall.perf_counter() - started)
        return action

    def store(self, observation: EnvStep) -> npt.NDArray[np.int64]:
        """:meth:`step` without timing it (the acting process timed its own inference)."""
        try:
            return self._step(observation)
        except BaseException as error:
            self.failure.record(error)
            self.finished.set()
            raise

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
