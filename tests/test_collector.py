"""The acting side on its own: the agent, the rollout store and the collector's bookkeeping."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from pamiqx.api import ActionSpec, Curiosity, MLPEncoder, ObservationSpec, Transitions
from pamiqx.models.actor_critic import ActorCritic
from pamiqx.runtime.agent import PolicyAgent
from pamiqx.runtime.collector import Collector
from pamiqx.runtime.rollout import Rollout

VECTORS = ObservationSpec((3,), "float32", "vector")
THREE = ActionSpec("discrete", (3,))
ENVS = 2


class ScoringCuriosity(Curiosity):
    """Online: the reward of a transition is the value of the observation it produced."""

    style = "online"

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]] = []

    def modules(self) -> dict[str, torch.nn.Module]:
        return {}

    def agent_step(
        self, observation: torch.Tensor, action: torch.Tensor | None, episode_start: torch.Tensor
    ) -> torch.Tensor | None:
        self.calls.append((observation.clone(), action, episode_start.clone()))
        return None if action is None else observation[:, 0].float()

    def rewards(self, batch: Transitions) -> torch.Tensor:
        assert batch.intrinsic is not None
        return batch.intrinsic

    def update(self, batch: Transitions) -> dict[str, float]:
        return {}


def _policy(recurrent: int | None = None) -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic(MLPEncoder(3, 8, (8,)), ("discrete", (3,)), recurrent, hidden=(8,))


def _collector(curiosity: Curiosity, steps: int = 4, recurrent: int | None = None) -> Collector:
    policy = _policy(recurrent)
    agent = PolicyAgent(policy, curiosity, ENVS, torch.device("cpu"))
    return Collector(
        agent, lambda: Rollout(steps, ENVS, VECTORS, THREE, policy.hidden_dim), torch.device("cpu")
    )


def _obs(t: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Observation of step t: its first feature is 10 t + env (so rewards identify steps)."""
    return np.array([[10.0 * t + e, 0.0, 1.0] for e in range(ENVS)], dtype=np.float32)


def _run(collector: Collector, steps: int, start: int = 0) -> list[Any]:
    batches = []
    for t in range(start, start + steps):
        collector.act(_obs(t), np.array([t == 0] * ENVS))
        batch = collector.complete(_obs(t + 1), np.full(ENVS, t, np.float32), np.zeros(ENVS, bool))
        if batch is not None:
            batches.append(batch)
    return batches


def test_online_rewards_land_on_the_transition_they_score_each_scored_once() -> None:
    curiosity = ScoringCuriosity()
    collector = _collector(curiosity, steps=4)
    first, second = _run(collector, 8)
    # Transition t produced o_{t+1}, whose first feature is 10 (t + 1) + env.
    expected = torch.tensor([[10.0 * (t + 1) + e for e in range(ENVS)] for t in range(4)])
    assert torch.equal(first.rewards_int_online, expected)
    assert torch.equal(second.rewards_int_online, expected + 40)
    # o_4 was scored at the hand-over (bootstrap), so the next act did not score it again:
    # one call per observation, 9 observations o_0 .. o_8.
    scored = [float(obs[0, 0]) for obs, _, _ in curiosity.calls]
    assert scored == [10.0 * t for t in range(9)]
    assert curiosity.calls[0][1] is None  # nothing led to the first observation


def test_rollout_stores_the_step_and_its_outcome() -> None:
    collector = _collector(ScoringCuriosity(), steps=3)
    [batch] = _run(collector, 3)
    assert torch.equal(batch.observations[:, :, 0], torch.tensor([[0.0, 1.0], [10, 11], [20, 21]]))
    assert torch.equal(batch.next_observations[:, :, 0], batch.observations[:, :, 0] + 10)
    assert torch.equal(batch.rewards_ext, torch.tensor([[0.0, 0.0], [1, 1], [2, 2]]))
    assert batch.episode_starts[0].all() and not batch.episode_starts[1:].any()
    # The stored log-probabilities are those of the stored actions under the acting policy.
    policy = collector.agent.policy
    with torch.no_grad():
        out = policy(batch.observations.reshape(6, 3), torch.zeros(6, 0))
    assert torch.allclose(out.dist.log_prob(batch.actions.reshape(6)), batch.log_probs.reshape(6))


def test_a_full_rollout_is_handed_over_and_a_fresh_one_started() -> None:
    collector = _collector(ScoringCuriosity(), steps=2)
    collector.act(_obs(0), np.ones(ENVS, bool))
    assert collector.pending
    assert collector.complete(_obs(1), np.zeros(ENVS, np.float32), np.zeros(ENVS, bool)) is None
    assert not collector.pending
    collector.act(_obs(1), np.zeros(ENVS, bool))
    batch = collector.complete(_obs(2), np.zeros(ENVS, np.float32), np.zeros(ENVS, bool))
    assert batch is not None and collector.rollout.size == 0
    # The batch does not share storage with the new rollout (the trainer may read it later).
    _run(collector, 1, start=2)
    assert float(batch.observations[0, 0, 0]) == 0.0


def test_recurrent_state_before_each_step_is_stored_and_reset_at_episode_starts() -> None:
    collector = _collector(ScoringCuriosity(), steps=3, recurrent=4)
    [batch] = _run(collector, 3)
    assert torch.equal(batch.hidden[0], torch.zeros(ENVS, 4))  # the state before the first step
    # Replaying from the stored state reproduces the state stored for the next step.
    policy = collector.agent.policy
    with torch.no_grad():
        out = policy(batch.observations[1], batch.hidden[1], reset=batch.episode_starts[1])
    assert torch.allclose(out.hidden, batch.hidden[2])


def test_state_round_trip_mid_rollout_continues_identically() -> None:
    one, two = _collector(ScoringCuriosity(), steps=4), _collector(ScoringCuriosity(), steps=4)
    _run(one, 2)
    two.load_state_dict(one.state_dict())
    torch.manual_seed(5)
    [a] = _run(one, 2, start=2)
    torch.manual_seed(5)
    [b] = _run(two, 2, start=2)
    for name in ("observations", "actions", "log_probs", "rewards_int_online", "hidden"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_rollout_checkpoint_refuses_more_steps_than_it_holds() -> None:
    small = Rollout(2, ENVS, VECTORS, THREE, 0)
    collector = _collector(ScoringCuriosity(), steps=4)
    _run(collector, 3)
    with pytest.raises(ValueError, match="more than 2"):
        small.load_state_dict(collector.rollout.state_dict())


class SilentCuriosity(ScoringCuriosity):
    """Online, but scores nothing: every observation must still be offered exactly once."""

    def agent_step(
        self, observation: torch.Tensor, action: torch.Tensor | None, episode_start: torch.Tensor
    ) -> torch.Tensor | None:
        super().agent_step(observation, action, episode_start)
        return None


def test_an_observation_is_offered_once_even_when_nothing_is_scored() -> None:
    curiosity = SilentCuriosity()
    first, second = _run(_collector(curiosity, steps=4), 8)
    assert [float(obs[0, 0]) for obs, _, _ in curiosity.calls] == [10.0 * t for t in range(9)]
    assert not first.rewards_int_online.any() and not second.rewards_int_online.any()
