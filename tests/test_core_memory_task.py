"""A recall task only a recurrent policy can solve, learnt by the host's PPO with a ``qlstm`` core.

Each episode shows one of two cues at its first step, then blank steps, then a
query; naming the cue at the query pays +1, anything else -1. The query looks
the same whichever cue was shown, so a feed-forward policy can do no better
than chance (expected reward 0) while a policy that remembers earns 1.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pytest
import torch

from pamiqx.api import ActionSpec, MLPEncoder, ObservationSpec, PolicyNetwork
from pamiqx.api.cores import CoreSizes, RecurrentStack
from pamiqx.builtin.curiosity import NoCuriosity
from pamiqx.learner.options import PPOOptions
from pamiqx.models.actor_critic import ActorCritic
from pamiqx.models.core_policy import CorePolicy
from pamiqx.testing import TrainingHarness

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DELAY = 4  # steps from the cue to the query
PHASES = 10  # the qlstm policy answers every query after ~5 on this task
OBS = ObservationSpec(shape=(3,), dtype="float32", kind="vector")
ACTIONS = ActionSpec(kind="discrete", nvec=(2,))


class CueRecall:
    """``E`` copies of the task, each at its own point of its episode."""

    def __init__(self, num_envs: int, seed: int, synchronized: bool = False) -> None:
        """Start every copy at a random step of an episode (or all at the cue)."""
        self.rng = np.random.default_rng(seed)
        self.cue = self.rng.integers(0, 2, num_envs)
        start = np.zeros(num_envs, dtype=np.int64)
        self.t = start if synchronized else self.rng.integers(0, DELAY + 1, num_envs)

    def observe(self) -> npt.NDArray[np.float32]:
        """Cue one-hot at step 0, a query flag at the last step, zeros in between."""
        obs = np.zeros((len(self.t), 3), dtype=np.float32)
        at_cue = self.t == 0
        obs[at_cue, self.cue[at_cue]] = 1.0
        obs[self.t == DELAY, 2] = 1.0
        return obs

    def starts(self) -> npt.NDArray[np.bool_]:
        """Which copies are at the first step of an episode."""
        starts: npt.NDArray[np.bool_] = self.t == 0
        return starts

    def act(self, actions: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Pay the query's reward and move on (a new episode after the query)."""
        at_query = self.t == DELAY
        reward = np.where(actions == self.cue, 1.0, -1.0) * at_query
        self.t = np.where(at_query, 0, self.t + 1)
        self.cue = np.where(at_query, self.rng.integers(0, 2, len(self.t)), self.cue)
        paid: npt.NDArray[np.float32] = reward.astype(np.float32)
        return paid


class _OwnsPolicy(NoCuriosity):
    """No intrinsic reward; acts through the network under test."""

    def __init__(self, policy: PolicyNetwork) -> None:
        super().__init__("cpu")
        self.policy = policy

    def policy_network(self, built: Mapping[str, torch.nn.Module]) -> PolicyNetwork:
        return self.policy


def train(policy: PolicyNetwork, phases: int, seed: int = 0) -> None:
    """Train ``policy`` on the task with the host's collector and PPO learner."""
    options = PPOOptions(
        lr=3e-3,
        rollout_steps=40,
        sequence_length=20,
        minibatch_size=160,
        epochs=4,
        gamma_ext=0.9,
        ext_coef=1.0,
        int_coef=0.0,
        entropy_coef=0.01,
    )
    harness = TrainingHarness(_OwnsPolicy(policy), OBS, ACTIONS, 16, options, seed=seed)
    world = CueRecall(16, seed)
    for _ in range(phases):
        batch = None
        while batch is None:
            actions = harness.collector.act(world.observe(), world.starts())
            reward = world.act(actions)
            batch = harness.collector.complete(world.observe(), reward, world.starts())
        harness.train(batch)


@torch.no_grad()
def recall_accuracy(policy: PolicyNetwork, episodes: int = 256) -> float:
    """Fraction of fresh episodes whose query the policy's most likely action answers."""
    world = CueRecall(episodes, seed=123, synchronized=True)
    hidden = policy.initial_state(episodes)
    correct = np.zeros(episodes, dtype=bool)
    for t in range(DELAY + 1):
        obs = torch.from_numpy(world.observe())
        out = policy(obs, hidden, reset=torch.from_numpy(world.starts()))
        actions = out.dist.mode()
        hidden = policy.fold_action(out.hidden, actions, None)
        if t == DELAY:
            correct = actions.numpy() == world.cue
        world.act(actions.numpy())
    return float(correct.mean())


def _qlstm_policy() -> CorePolicy:
    core = RecurrentStack("qlstm", 16, CoreSizes(depth=1, width=32, ff_ratio=2.0))
    return CorePolicy(MLPEncoder(3, feature_dim=16, hidden=(16,)), core, ("discrete", (2,)))


def _feed_forward_policy() -> ActorCritic:
    return ActorCritic(
        MLPEncoder(3, feature_dim=32, hidden=(32,)), ("discrete", (2,)), hidden=(32,)
    )


def test_the_task_cannot_be_solved_without_memory() -> None:
    world = CueRecall(1000, seed=0, synchronized=True)
    queries = []
    for _ in range(DELAY + 1):
        queries.append(world.observe())
        world.act(np.zeros(1000, dtype=np.int64))
    # Every query observation is identical, whatever the cue.
    assert np.unique(queries[DELAY], axis=0).shape[0] == 1
    assert set(np.unique(queries[0][:, :2].argmax(1))) == {0, 1}


@pytest.mark.slow
def test_qlstm_learns_recall_where_a_feed_forward_policy_cannot() -> None:
    torch.manual_seed(0)
    recurrent, feed_forward = _qlstm_policy(), _feed_forward_policy()
    train(recurrent, phases=PHASES)
    train(feed_forward, phases=PHASES)
    assert recall_accuracy(recurrent) > 0.95
    assert recall_accuracy(feed_forward) < 0.65
