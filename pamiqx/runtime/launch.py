"""Run loops: lock-step for simulators (collect, then train; deterministic per seed)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from pamiqx.api import Environment
from pamiqx.runtime.build import Components
from pamiqx.runtime.rollout import Rollout
from pamiqx.runtime.training import train_phase


class StopRequest:
    """Set by a signal handler (or a test) to end a run at the next step, after a checkpoint."""

    def __init__(self) -> None:
        """Start un-set."""
        self.reason: str | None = None

    def __bool__(self) -> bool:
        return self.reason is not None

    def request(self, reason: str) -> None:
        """Ask the run to stop."""
        self.reason = self.reason or reason


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into a stop request while the block runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.request(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def observe_all(
    envs: list[Environment],
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Observe every world: stacked observations, rewards and episode-start flags."""
    steps = [env.observe() for env in envs]
    observations = np.stack([s.observation for s in steps])
    rewards = np.array([s.reward for s in steps], dtype=np.float32)
    starts = np.array([s.episode_start for s in steps], dtype=np.bool_)
    return observations, rewards, starts


def evaluation_metrics(envs: list[Environment]) -> dict[str, float]:
    """Average each world's evaluation metrics (e.g. ``coverage``) over the worlds."""
    collected: dict[str, list[float]] = {}
    for env in envs:
        for key, value in env.evaluation_metrics().items():
            collected.setdefault(key, []).append(value)
    return {k: float(np.mean(v)) for k, v in collected.items()}


class LockstepLoop:
    """Collect ``rollout_steps`` steps in every world, train, repeat until ``max_steps``.

    Everything happens in the calling thread, so two runs with one seed on the
    CPU produce the same metrics.
    """

    def __init__(
        self,
        components: Components,
        rollout: Rollout,
        max_steps: int,
        start_step: int,
        on_phase: Callable[[int, dict[str, float]], None],
        on_step: Callable[[int], None],
        checkpoint: Callable[[], None],
    ) -> None:
        """Prepare the loop.

        Args:
            components: Worlds, agent, curiosity and learner.
            rollout: Rollout storage (possibly restored mid-rollout).
            max_steps: Total environment steps to reach.
            start_step: Steps already done (resume).
            on_phase: Called after each training phase with (step, metrics).
            on_step: Called after each environment step with the step count.
            checkpoint: Called after each training phase; saves when one is due.
        """
        self.c = components
        self.rollout = rollout
        self.max_steps = max_steps
        self.step = start_step
        self.on_phase = on_phase
        self.on_step = on_step
        self.checkpoint = checkpoint

    def run(self, stop: StopRequest) -> None:
        """Run until ``max_steps`` or a stop request (the caller checkpoints afterwards)."""
        c = self.c
        observations, _, starts = observe_all(c.envs)
        phase_start = time.perf_counter()
        phase_steps = 0
        while self.step < self.max_steps and not stop:
            actions, record = c.agent.act(observations, starts)
            self.rollout.record(record)
            for env, action in zip(c.envs, actions, strict=True):
                env.affect(action)
            observations, rewards, starts = observe_all(c.envs)
            # An observation that starts an episode means the action just taken ended one.
            self.rollout.complete_step(rewards, starts.copy(), torch.from_numpy(observations))
            self.step += len(c.envs)
            phase_steps += len(c.envs)
            self.on_step(self.step)
            if self.rollout.full:
                collect_s = time.perf_counter() - phase_start
                metrics = self.train(observations, starts)
                elapsed = time.perf_counter() - phase_start
                metrics.update(
                    {
                        "perf/steps_per_second": phase_steps / elapsed,
                        "perf/collect_seconds": collect_s,
                        "perf/train_seconds": elapsed - collect_s,
                    }
                )
                metrics.update(evaluation_metrics(c.envs))
                self.on_phase(self.step, metrics)
                self.checkpoint()
                phase_start = time.perf_counter()
                phase_steps = 0

    def train(
        self, observations: npt.NDArray[Any], starts: npt.NDArray[np.bool_]
    ) -> dict[str, float]:
        """Bootstrap the rollout's last values, run one training phase, clear the rollout."""
        c = self.c
        last_values, online_last = c.agent.bootstrap(observations, starts)
        self.rollout.score_last(online_last)
        batch = self.rollout.batch(c.device, last_values)
        metrics = train_phase(batch, c.curiosity, c.learner)
        self.rollout.clear()
        return metrics
