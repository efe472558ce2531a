"""The training side of a real-time run: pamiq-core's trainer around the training phase."""

from __future__ import annotations

import threading
import time as wall
from collections.abc import Callable, Mapping
from typing import Protocol

import torch
from pamiq_core import Trainer

from pamiqx.learner.batch import RolloutBatch
from pamiqx.runtime.build import Components
from pamiqx.runtime.realtime_agent import ROLLOUTS
from pamiqx.runtime.realtime_world import Failure
from pamiqx.runtime.shared_weights import SharedWeights
from pamiqx.runtime.training import train_phase


class WeightLink(Protocol):
    """How trained weights reach acting, and how far acting's lag."""

    def publish(self) -> None:
        """Hand the current weights to acting (after each training phase)."""

    def after_step(self, bound: int) -> None:
        """Called after each optimizer step: keep acting's lag under ``bound`` (0: no bound)."""

    def lag(self) -> int:
        """Optimizer steps the weights acting holds lag the trained ones."""


class CopyLink:
    """Thread mode: acting's copy of the policy, loaded under a lock."""

    def __init__(
        self,
        policy: torch.nn.Module,
        acting: torch.nn.Module,
        lock: threading.Lock,
        steps: Callable[[], int],
    ) -> None:
        """Copy ``policy`` into ``acting`` under ``lock``; ``steps`` is the learner's count."""
        self.policy, self.acting, self.lock, self.steps = policy, acting, lock, steps
        self.synced_at = steps()

    def publish(self) -> None:
        """Load the trained weights into acting's copy."""
        with self.lock:
            self.acting.load_state_dict(self.policy.state_dict())
        self.synced_at = self.steps()

    def after_step(self, bound: int) -> None:
        """Copy once acting lags ``bound`` steps."""
        if bound > 0 and self.lag() >= bound:
            self.publish()

    def lag(self) -> int:
        """Optimizer steps since the last copy."""
        return self.steps() - self.synced_at


class SharedLink:
    """Process mode: weights through shared memory, taken by acting between its steps."""

    def __init__(
        self,
        weights: SharedWeights,
        modules: Mapping[str, torch.nn.Module],
        steps: Callable[[], int],
        alive: Callable[[], bool],
    ) -> None:
        """Publish ``modules`` to ``weights``; ``alive`` says whether acting still runs."""
        self.weights, self.modules, self.steps, self.alive = weights, modules, steps, alive

    def publish(self) -> None:
        """Publish the trained weights; acting takes them after its current step."""
        self.weights.publish(self.modules, self.steps())

    def after_step(self, bound: int) -> None:
        """Note the step; at the bound, publish and wait until acting took the weights.

        The wait lasts at most one of acting's steps (none while it is paused or
        finished), so acting never acts on weights ``bound`` or more steps old.
        """
        self.weights.note_step(self.steps())
        if bound > 0 and self.lag() >= bound:
            version = self.weights.publish(self.modules, self.steps())
            self.weights.wait_taken(version, self.alive)

    def lag(self) -> int:
        """Optimizer steps the weights acting holds lag the trained ones."""
        return self.steps() - self.weights.taken_step


class PPOTrainer(Trainer):
    """Trains on each rollout the agent hands over, then hands the weights to acting."""

    def __init__(
        self,
        components: Components,
        link: WeightLink,
        on_phase: Callable[[int, dict[str, float]], None],
        timing: Callable[[], dict[str, float]],
        evaluation: Callable[[], dict[str, float]],
        failure: Failure,
        max_staleness: int = 0,
    ) -> None:
        """Create the trainer; it trains when at least one new rollout arrived.

        Args:
            components: The run's components (the learner trains ``components.policy``).
            link: How the trained weights reach acting.
            on_phase: Called with the step and metrics after each phase.
            timing: Returns the real-time statistics gathered since the last phase.
            evaluation: Returns the world's evaluation metrics.
            failure: Where an exception is recorded.
            max_staleness: Optimizer steps acting's weights may lag, even inside a
                phase (0: they are handed over after each phase only).
        """
        super().__init__(training_condition_data_user=ROLLOUTS, min_new_data_count=1)
        self.c = components
        self.link = link
        self.on_phase = on_phase
        self.timing = timing
        self.evaluation = evaluation
        self.failure = failure
        components.learner.after_step = lambda: link.after_step(max_staleness)

    def staleness(self) -> int:
        """Optimizer steps acting's weights lag the trained policy."""
        return self.link.lag()

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
            self.link.publish()
            metrics["perf/train_seconds"] = wall.perf_counter() - started
            metrics.update(self.timing())
            metrics.update(self.evaluation())
            self.on_phase(step, metrics)
        except BaseException as error:
            self.failure.record(error)
            raise
