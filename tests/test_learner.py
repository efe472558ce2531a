"""The PPO learner on its own: it learns what the advantages say, and resumes exactly."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from pamiqx.api import ActionSpec, MLPEncoder, ObservationSpec
from pamiqx.builtin.curiosity import NoCuriosity
from pamiqx.faults import TrainingDiverged
from pamiqx.learner.batch import RolloutBatch
from pamiqx.learner.options import PPOOptions
from pamiqx.learner.ppo import PPOLearner
from pamiqx.models.actor_critic import ActorCritic
from pamiqx.runtime.agent import PolicyAgent
from pamiqx.runtime.collector import Collector
from pamiqx.runtime.rollout import Rollout

VECTORS = ObservationSpec((2,), "float32", "vector")
THREE = ActionSpec("discrete", (3,))
ENVS, STEPS = 4, 32
OPTIONS = PPOOptions(rollout_steps=STEPS, epochs=4, minibatch_size=32, lr=3e-3, gamma_ext=0.0)


def _parts(
    options: PPOOptions = OPTIONS, recurrent: int | None = None
) -> tuple[Collector, PPOLearner]:
    torch.manual_seed(0)
    policy = ActorCritic(MLPEncoder(2, 16, (16,)), ("discrete", (3,)), recurrent, hidden=(16,))
    cpu = torch.device("cpu")
    agent = PolicyAgent(policy, NoCuriosity("cpu"), ENVS, cpu)
    rollout = lambda: Rollout(STEPS, ENVS, VECTORS, THREE, policy.hidden_dim)  # noqa: E731
    learner = PPOLearner(policy, options, cpu, generator=torch.Generator().manual_seed(0))
    return Collector(agent, rollout, cpu), learner


def _collect(collector: Collector, rewarded: int, bandit: bool = True) -> RolloutBatch:
    """Reward 1 for the ``rewarded`` action; a bandit starts an episode at every step."""
    obs = np.ones((ENVS, 2), np.float32)
    starts = np.ones(ENVS, bool)
    while True:
        actions = collector.act(obs, starts)
        rewards = (actions == rewarded).astype(np.float32)
        starts = np.full(ENVS, bandit)
        batch = collector.complete(obs, rewards, starts)
        if batch is not None:
            return batch


def _probability(collector: Collector, action: int) -> float:
    with torch.no_grad():
        out = collector.agent.policy(torch.ones(1, 2), collector.agent.hidden[:1])
    return float(out.dist.categoricals[0].probs[0, action])


def _train(rewarded: int, options: PPOOptions = OPTIONS, phases: int = 6) -> float:
    collector, learner = _parts(options)
    for _ in range(phases):
        batch = _collect(collector, rewarded)
        learner.train(batch, torch.zeros(STEPS, ENVS))
    return _probability(collector, 1)


def test_ppo_raises_the_probability_of_the_rewarded_action_against_baselines() -> None:
    start = _probability(_parts()[0], 1)
    assert abs(start - 1 / 3) < 0.05  # the head starts near uniform
    learned = _train(rewarded=1)
    avoided = _train(rewarded=2)  # another action pays: action 1 loses probability
    ignored = _train(rewarded=1, options=PPOOptions(**{**_as_dict(OPTIONS), "ext_coef": 0.0}))
    assert learned > 0.6
    assert avoided < start
    assert abs(ignored - start) < abs(learned - start) / 4  # no weight on the reward: no learning


def _as_dict(options: PPOOptions) -> dict[str, object]:
    import attrs

    return attrs.asdict(options)


def test_training_from_a_restored_state_continues_identically() -> None:
    collector, learner = _parts()
    batch = _collect(collector, 1)
    intrinsic = torch.linspace(0.0, 1.0, STEPS * ENVS).reshape(STEPS, ENVS)
    learner.train(batch, intrinsic)
    state = copy.deepcopy(learner.state_dict())  # optimizer state is live until saved
    weights = {k: v.clone() for k, v in learner.policy.state_dict().items()}
    after = learner.train(batch, intrinsic)

    _, twin = _parts()
    twin.policy.load_state_dict(weights)
    twin.load_state_dict(state)
    assert twin.train(batch, intrinsic) == after


@pytest.mark.parametrize("recurrent", [None, 8])
def test_replayed_windows_reproduce_the_acting_log_probabilities(recurrent: int | None) -> None:
    # With a negligible step size every ratio is 1 exactly when the learner replays each
    # window from the state stored while acting (a window started from zeros would not be).
    options = PPOOptions(
        rollout_steps=STEPS, epochs=1, minibatch_size=32, sequence_length=8, lr=1e-12
    )
    collector, learner = _parts(options, recurrent=recurrent)
    batch = _collect(collector, 1, bandit=False)  # one episode: the state carries on
    metrics = learner.train(batch, torch.zeros(STEPS, ENVS))
    assert metrics["approx_kl"] < 1e-9 and metrics["clip_fraction"] == 0.0


def test_windows_replayed_from_zero_states_would_be_caught() -> None:
    options = PPOOptions(
        rollout_steps=STEPS, epochs=1, minibatch_size=32, sequence_length=8, lr=1e-12
    )
    collector, learner = _parts(options, recurrent=8)
    batch = _collect(collector, 1, bandit=False)
    batch.hidden.zero_()  # what a learner ignoring the stored states would replay from
    # Small (the untrained head is near uniform) but a thousand times the float noise above.
    assert learner.train(batch, torch.zeros(STEPS, ENVS))["approx_kl"] > 1e-8


def test_a_nan_loss_stops_training_before_the_weights_change() -> None:
    collector, learner = _parts()
    batch = _collect(collector, 1)
    before = {k: v.clone() for k, v in learner.policy.state_dict().items()}
    batch.values["ext"][0, 0] = float("nan")  # what a diverged value head would have stored
    with pytest.raises(TrainingDiverged, match="became nan in training phase 1"):
        learner.train(batch, torch.zeros(STEPS, ENVS))
    for key, value in learner.policy.state_dict().items():
        assert torch.equal(value, before[key]), key
