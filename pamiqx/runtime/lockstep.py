"""Lock-step runs: collect a rollout, train on it, repeat (deterministic per seed)."""

from __future__ import annotations

import time
from collections.abc import Callable

from pamiqx.runtime.build import Components
from pamiqx.runtime.heap import release_free_memory
from pamiqx.runtime.signals import StopRequest
from pamiqx.runtime.training import train_phase


class LockstepLoop:
    """Collect ``rollout_steps`` steps in every world, train, repeat until ``max_steps``.

    Everything happens in the calling thread, so two runs with one seed on the
    CPU produce the same metrics.
    """

    def __init__(
        self,
        components: Components,
        max_steps: int,
        start_step: int,
        on_phase: Callable[[int, dict[str, float]], None],
        on_step: Callable[[int], None],
        checkpoint: Callable[[], None],
    ) -> None:
        """Prepare the loop.

        Args:
            components: Worlds, collector (possibly restored mid-rollout), curiosity, learner.
            max_steps: Total environment steps to reach.
            start_step: Steps already done (resume).
            on_phase: Called after each training phase with (step, metrics).
            on_step: Called after each environment step with the step count.
            checkpoint: Called after each training phase; saves when one is due.
        """
        self.c = components
        self.max_steps = max_steps
        self.step = start_step
        self.on_phase = on_phase
        self.on_step = on_step
        self.checkpoint = checkpoint

    def run(self, stop: StopRequest) -> None:
        """Run until ``max_steps`` or a stop request (the caller checkpoints afterwards)."""
        c = self.c
        observations, _, starts = c.worlds.observe()
        phase_start = time.perf_counter()
        phase_steps = 0
        while self.step < self.max_steps and not stop:
            actions = c.collector.act(observations, starts)
            c.worlds.affect(actions)
            observations, rewards, starts = c.worlds.observe()
            batch = c.collector.complete(observations, rewards, starts)
            self.step += len(c.envs)
            phase_steps += len(c.envs)
            self.on_step(self.step)
            if batch is not None:
                collect_s = time.perf_counter() - phase_start
                metrics = train_phase(batch, c.curiosity, c.learner, c.who["curiosity"], c.stage)
                elapsed = time.perf_counter() - phase_start
                metrics.update(
                    {
                        "perf/steps_per_second": phase_steps / elapsed,
                        "perf/collect_seconds": collect_s,
                        "perf/train_seconds": elapsed - collect_s,
                    }
                )
                metrics.update(c.worlds.evaluation_metrics())
                self.on_phase(self.step, metrics)
                self.checkpoint()
                # What the phase freed goes back to the system, so every phase starts
                # from what is live (pamiqx.runtime.heap: glibc keeps a varying part).
                release_free_memory()
                phase_start = time.perf_counter()
                phase_steps = 0
