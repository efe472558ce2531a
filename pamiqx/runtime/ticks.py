"""The control beat of real-time runs: each action goes out at its tick.

pamiq-core's ``FixedIntervalInteraction`` observes, infers and acts, then sleeps
out the rest of the interval: the action leaves whenever inference finishes, so
every spike of inference (or of the training thread holding the interpreter)
moves the world's beat. :class:`TickedInteraction` fixes the beat instead. Ticks
lie on a grid ``t_0 + k * interval`` of pamiq-core's clock (scaled, and stopped
while paused). For tick ``k`` it

1. observes ``budget`` seconds before the tick, then runs the agent's step
   (inference) on that observation,
2. waits for the tick and sends the action computed for that observation.

**Overrun policy: skip ticks, never drift.** When inference ends after its tick,
nothing is sent at that tick (the world holds the previous action, as a real
world does between commands); the action goes out at the first tick still
ahead, so it is always the one computed for the observation it is sent after,
and the grid never shifts. Every such step counts as an overrun, and every tick
left without a new action as a skipped tick (:attr:`TickStats`).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import attrs
from pamiq_core import time
from pamiq_core.interaction import Agent, Interaction
from pamiq_core.interaction import Environment as CoreEnvironment


@attrs.define
class TickStats:
    """What the beat did since the last :meth:`TickedInteraction.take_stats`.

    Attributes:
        lateness: Seconds each action left after its tick (scaled clock).
        intervals: Seconds between consecutive actions sent (scaled clock).
        overruns: Steps whose inference ended after their tick.
        skipped_ticks: Ticks at which no new action was sent.
    """

    lateness: list[float] = attrs.field(factory=list)
    intervals: list[float] = attrs.field(factory=list)
    overruns: int = 0
    skipped_ticks: int = 0


class TickedInteraction[ObsType, ActType](Interaction[ObsType, ActType]):
    """Observe ``budget`` before each tick, infer, send the action at the tick.

    Attributes:
        interval: Seconds between ticks.
        budget: Seconds between an observation and its tick: what inference may take.
        tick: Index of the next tick on the grid.
    """

    def __init__(
        self,
        agent: Agent[ObsType, ActType],
        environment: CoreEnvironment[ObsType, ActType],
        interval: float,
        budget: float,
    ) -> None:
        """Create the interaction.

        Args:
            agent: Chooses each action (its ``step`` is the inference).
            environment: Observed and acted on.
            interval: Seconds between ticks.
            budget: Seconds before a tick at which its observation is taken.

        Raises:
            ValueError: If ``budget`` is not in ``(0, interval)``.
        """
        super().__init__(agent, environment)
        if not 0 < budget < interval:
            raise ValueError(f"the budget must be in (0, {interval}) s, got {budget}")
        self.interval = interval
        self.budget = budget
        self.tick = 0
        self._origin = 0.0
        self._last_sent: float | None = None
        self.stats = TickStats()
        # The training thread takes the statistics while this one adds to them.
        self._stats_lock = threading.Lock()

    def setup(self) -> None:
        """Start the grid: the first tick is one budget from now.

        If the first inference takes longer, the grid starts when it ends instead.
        """
        super().setup()
        self._origin = time.perf_counter() + self.budget
        self.tick = 0

    def tick_time(self, tick: int) -> float:
        """Return when tick ``tick`` falls on pamiq-core's clock."""
        return self._origin + tick * self.interval

    def step(self) -> None:
        """One tick: observe before it, infer, send at it (or at a later one on overrun)."""
        _sleep_until(self.tick_time(self.tick) - self.budget)
        observation = self.environment.observe()
        action = self.agent.step(observation)
        finished = time.perf_counter()
        if self._last_sent is None and finished > self.tick_time(self.tick):
            # A cold first inference is start-up, not an overrun: the grid starts here.
            self._origin, self.tick = finished, 0
        due = self.tick_time(self.tick)
        missed = 0
        if finished > due:
            # Skip the ticks that passed: the action goes at the first one still ahead.
            missed = math.floor((finished - due) / self.interval) + 1
            self.tick += missed
            due = self.tick_time(self.tick)
        _sleep_until(due)
        self.environment.affect(action)
        sent = time.perf_counter()
        with self._stats_lock:
            if missed:
                self.stats.overruns += 1
                self.stats.skipped_ticks += missed
            self.stats.lateness.append(sent - due)
            if self._last_sent is not None:
                self.stats.intervals.append(sent - self._last_sent)
        self._last_sent = sent
        self.tick += 1

    def on_resumed(self) -> None:
        """Carry on the grid after a pause (pamiq-core's clock stood still meanwhile)."""
        super().on_resumed()
        now = time.perf_counter()
        if self.tick_time(self.tick) - self.budget < now:
            # The pause ended inside a budget: start again from the next whole tick.
            self.tick = math.ceil((now + self.budget - self._origin) / self.interval)

    def take_stats(self) -> TickStats:
        """Return the statistics gathered since the last call and start new ones."""
        with self._stats_lock:
            stats, self.stats = self.stats, TickStats()
        return stats


def _sleep_until(moment: float) -> None:
    """Sleep until ``moment`` on pamiq-core's clock (at once if it has passed)."""
    remaining = moment - time.perf_counter()
    if remaining > 0:
        time.sleep(remaining)


def tick_metrics(stats: TickStats) -> dict[str, Any]:
    """Turn :class:`TickStats` into ``realtime/...`` metrics (milliseconds and counts)."""
    import numpy as np

    out: dict[str, Any] = {
        "realtime/overruns": float(stats.overruns),
        "realtime/skipped_ticks": float(stats.skipped_ticks),
    }
    if stats.lateness:
        lateness = 1e3 * np.asarray(stats.lateness)
        out["realtime/tick_lateness_ms_p99"] = float(np.percentile(lateness, 99))
        out["realtime/tick_lateness_ms_max"] = float(lateness.max())
    if stats.intervals:
        intervals = 1e3 * np.asarray(stats.intervals)
        out["realtime/interval_ms_mean"] = float(intervals.mean())
        out["realtime/interval_ms_p99"] = float(np.percentile(intervals, 99))
    return out
