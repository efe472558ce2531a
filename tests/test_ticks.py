"""Real time: each action at its tick (computed for the observation before it), bounded lag."""

from __future__ import annotations

import itertools
import threading
import time as wall
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from pamiq_core.interaction import Agent, Environment

from pamiqx.runtime.ticks import TickedInteraction, tick_metrics

INTERVAL, BUDGET = 0.05, 0.01
SLOW = {3, 4, 9}  # observations whose inference takes three budgets


class Counter(Environment[int, str]):
    """Hands out numbered observations; records each action with the tick it left at."""

    def __init__(self) -> None:
        super().__init__()
        self.observed = -1
        self.sent: list[tuple[str, int, int]] = []  # (action, last observation, tick)
        self.interaction: TickedInteraction[int, str] | None = None

    def observe(self) -> int:
        self.observed += 1
        return self.observed

    def affect(self, action: str) -> None:
        assert self.interaction is not None
        self.sent.append((action, self.observed, self.interaction.tick))


class Named(Agent[int, str]):
    """Names the action after its observation; slow on the observations in SLOW."""

    def step(self, observation: int) -> str:
        if observation in SLOW:
            wall.sleep(3 * BUDGET)
        return f"a{observation}"


def _run(steps: int) -> tuple[Counter, TickedInteraction[int, str]]:
    env = Counter()
    interaction = TickedInteraction(Named(), env, INTERVAL, BUDGET)
    env.interaction = interaction
    interaction.setup()
    for _ in range(steps):
        interaction.step()
    return env, interaction


def test_each_action_leaves_after_its_own_observation_and_overruns_skip_whole_ticks() -> None:
    env, interaction = _run(12)
    # The action sent is always the one computed for the observation just before it.
    assert [action for action, _, _ in env.sent] == [f"a{n}" for n in range(len(env.sent))]
    assert all(action == f"a{observed}" for action, observed, _ in env.sent)
    ticks = [tick for _, _, tick in env.sent]
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert all(gap >= 1 for gap in gaps)
    # A slow step's action goes at a later tick, never between ticks; each is counted.
    for n in SLOW:
        assert ticks[n] - ticks[n - 1] >= 2
    stats = interaction.take_stats()
    assert stats.overruns >= len(SLOW)
    assert stats.skipped_ticks == ticks[0] + sum(gap - 1 for gap in gaps)
    assert len(stats.lateness) == 12 and len(stats.intervals) == 11
    metrics = tick_metrics(stats)
    assert metrics["realtime/overruns"] == stats.overruns
    assert metrics["realtime/skipped_ticks"] == stats.skipped_ticks
    assert interaction.take_stats().overruns == 0  # taken: the next ones start afresh


def test_a_budget_outside_the_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="budget"):
        TickedInteraction(Named(), Counter(), INTERVAL, INTERVAL)


def test_metrics_of_an_idle_beat_are_counts_only() -> None:
    from pamiqx.runtime.ticks import TickStats

    metrics: dict[str, Any] = tick_metrics(TickStats())
    assert metrics == {"realtime/overruns": 0.0, "realtime/skipped_ticks": 0.0}


class _Learner:
    """Counts optimizer steps like PPOLearner and calls its hook after each."""

    def __init__(self) -> None:
        self.gradient_steps = 0
        self.after_step: Any = None

    def step(self, policy: torch.nn.Linear) -> None:
        with torch.no_grad():
            policy.weight.add_(1.0)
        self.gradient_steps += 1
        if self.after_step is not None:
            self.after_step()


@pytest.mark.parametrize("bound", [0, 3])
def test_the_acting_copy_is_synced_once_it_lags_max_staleness_steps(bound: int) -> None:
    from pamiqx.runtime.realtime import Failure, PPOTrainer
    from pamiqx.runtime.realtime_trainer import CopyLink

    policy, acting = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    acting.load_state_dict(policy.state_dict())
    learner = _Learner()
    components = SimpleNamespace(learner=learner, policy=policy)
    link = CopyLink(policy, acting, threading.Lock(), lambda: learner.gradient_steps)
    trainer = PPOTrainer(
        components,  # type: ignore[arg-type]
        link,
        lambda step, metrics: None,
        dict,
        dict,
        Failure(),
        max_staleness=bound,
    )
    lags = []
    for _ in range(7):  # one training phase of 7 optimizer steps
        learner.step(policy)
        lags.append(trainer.staleness())
    if bound == 0:  # only after the phase: the lag grows through it
        assert lags == [1, 2, 3, 4, 5, 6, 7]
        assert not torch.equal(acting.weight, policy.weight)
    else:  # synced at every third step, inside the phase
        assert lags == [1, 2, 0, 1, 2, 0, 1]
        assert torch.equal(acting.weight, policy.weight - 1.0)
