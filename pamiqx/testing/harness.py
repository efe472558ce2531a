"""A mechanism's own tests drive it through the host's collector and PPO learner, without a world.

:class:`TrainingHarness` is the lock-step loop minus the environment: the test
supplies the observations, the host's :class:`~pamiqx.runtime.collector.Collector`
acts, records and scores them exactly as in a run, and :meth:`TrainingHarness.train`
runs the host's training phase (curiosity rewards, curiosity update, PPO).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from pamiqx.api import ActionSpec, Curiosity, MLPEncoder, ObservationSpec, PolicyNetwork
from pamiqx.learner.batch import RolloutBatch
from pamiqx.learner.options import PPOOptions
from pamiqx.learner.ppo import PPOLearner
from pamiqx.models.actor_critic import ActorCritic
from pamiqx.runtime.agent import PolicyAgent
from pamiqx.runtime.collector import Collector
from pamiqx.runtime.rollout import Rollout
from pamiqx.runtime.training import train_phase

ObservationSource = Callable[[int], npt.NDArray[Any]]
"""Returns the ``(E, ...)`` observations of step ``t`` (``t = 0`` is the first)."""


def _default_policy(observation_spec: ObservationSpec, action_spec: ActionSpec) -> PolicyNetwork:
    """A small feed-forward actor-critic for mechanisms that do not own the policy."""
    from pamiqx.api import ConvEncoder

    encoder: torch.nn.Module
    if observation_spec.kind == "image":
        encoder = ConvEncoder(observation_spec.shape, 32, (8, 16, 16))  # type: ignore[arg-type]
    else:
        encoder = MLPEncoder(math.prod(observation_spec.shape), 32, (32,))
    return ActorCritic(encoder, (action_spec.kind, action_spec.nvec), hidden=(32,))


class TrainingHarness:
    """Collects rollouts of a curiosity mechanism with the host's parts and trains on them.

    Attributes:
        policy: The policy that acts (the mechanism's own network if it owns one).
        collector: The host's collector.
        learner: The host's PPO learner.
    """

    def __init__(
        self,
        curiosity: Curiosity,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
        num_envs: int = 2,
        options: PPOOptions | None = None,
        device: str = "cpu",
        seed: int = 0,
    ) -> None:
        """Build the policy, collector and learner around a mechanism.

        Args:
            curiosity: The mechanism under test (already built).
            observation_spec: What the observations look like.
            action_spec: The actions the policy takes.
            num_envs: Worlds per step.
            options: PPO options (``rollout_steps`` sets the rollout length).
            device: Where models run and rollouts are handed over.
            seed: Seeds the default policy and the learner's minibatch order.
        """
        torch.manual_seed(seed)
        self.curiosity = curiosity
        self.options = options or PPOOptions(rollout_steps=32, minibatch_size=64, epochs=2)
        self.device = torch.device(device)
        owned = curiosity.policy_network({})
        policy = owned or _default_policy(observation_spec, action_spec)
        self.policy = policy.to(self.device)
        agent = PolicyAgent(self.policy, curiosity, num_envs, self.device)
        self.collector = Collector(
            agent,
            lambda: Rollout(
                self.options.rollout_steps,
                num_envs,
                observation_spec,
                action_spec,
                policy.hidden_dim,
                policy.internal_action_dim,
                len(policy.internal_groups),
            ),
            self.device,
        )
        generator = torch.Generator().manual_seed(seed)
        self.learner = PPOLearner(self.policy, self.options, self.device, generator=generator)
        self.num_envs = num_envs
        self._t = 0

    def collect(
        self,
        observations: ObservationSource,
        rewards: Callable[[int], npt.NDArray[np.float32]] | None = None,
        episode_starts: Callable[[int], npt.NDArray[np.bool_]] | None = None,
    ) -> RolloutBatch:
        """Collect one full rollout, whatever the policy does (the observations are given).

        Args:
            observations: The observations of step ``t`` (counted over the harness's life).
            rewards: The extrinsic reward of the action at step ``t`` (zeros by default).
            episode_starts: Which observations of step ``t`` start an episode (only
                step 0 by default).

        Returns:
            The rollout as the learner gets it.
        """
        zeros = np.zeros(self.num_envs, dtype=np.float32)

        def starts(t: int) -> npt.NDArray[np.bool_]:
            if episode_starts is not None:
                return episode_starts(t)
            return np.full(self.num_envs, t == 0, dtype=np.bool_)

        while True:
            t = self._t
            self.collector.act(observations(t), starts(t))
            reward = zeros if rewards is None else rewards(t)
            batch = self.collector.complete(observations(t + 1), reward, starts(t + 1))
            self._t += 1
            if batch is not None:
                return batch

    def train(self, batch: RolloutBatch) -> dict[str, float]:
        """Run the host's training phase on a rollout and return its metrics."""
        return train_phase(batch, self.curiosity, self.learner)
