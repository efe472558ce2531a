"""The acting side: policy inference for a batch of worlds, and online curiosity scoring.

The agent keeps the acting state (the recurrent state and the last actions) and
nothing else; when a step is scored is the collector's decision
(:class:`pamiqx.runtime.collector.Collector`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import torch

from pamiqx.api.curiosity import Curiosity
from pamiqx.api.policy import PolicyNetwork, PolicyStep
from pamiqx.faults import (
    UNNAMED_CURIOSITY,
    UNNAMED_POLICY,
    PluginIdentity,
    blame,
    check_internal_groups,
    check_policy_groups,
    check_rewards,
)
from pamiqx.precision import autocast_context


@attrs.frozen
class AgentStep:
    """What the agent saw and did at one step, on the CPU, ready for the rollout.

    Attributes:
        observations: ``(E, ...)`` observations.
        episode_starts: ``(E,)`` which observations start an episode.
        hidden: ``(E, H)`` recurrent state before the step.
        actions: ``(E,)`` or ``(E, K)`` sampled actions.
        internal: ``(E, Z)`` sampled internal actions (``Z = 0`` for most policies).
        log_probs: ``(E,)`` their joint log-probabilities.
        values: ``(E,)`` value estimates per stream.
        online_reward: ``(E,)`` intrinsic reward of the *previous* step from an
            online curiosity, or None.
        groups: The policy groups' outputs at this step (``(E, G)`` each; ``G = 0``
            for a network without groups).
    """

    observations: torch.Tensor
    episode_starts: torch.Tensor
    hidden: torch.Tensor
    actions: torch.Tensor
    internal: torch.Tensor
    log_probs: torch.Tensor
    values: dict[str, torch.Tensor]
    online_reward: torch.Tensor | None
    groups: GroupOutputs


@attrs.frozen
class GroupOutputs:
    """What a network's extra policy groups returned at one step, ``(E, G)`` on the CPU.

    Attributes:
        log_probs: Each group's log-probability of its sampled columns (0 where it holds).
        values: Each group's value estimate.
        rewards: Each group's reward scored at this step.
        acting: bool, the group acts at this step.
    """

    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    acting: torch.Tensor

    @classmethod
    def none(cls, envs: int) -> GroupOutputs:
        """Return the ``(E, 0)`` outputs of a network without groups."""
        empty = torch.zeros(envs, 0)
        return cls(empty, empty, empty, empty.bool())


@attrs.frozen
class Bootstrap:
    """The values at the observation after a rollout (the agent does not advance).

    Attributes:
        values: ``(E,)`` per stream.
        online_reward: ``(E,)`` the online reward of the rollout's last transition, or None.
        groups: The policy groups' outputs there (log-probabilities 0).
    """

    values: dict[str, torch.Tensor]
    online_reward: torch.Tensor | None
    groups: GroupOutputs


class PolicyAgent:
    """Samples actions for ``E`` worlds and keeps their recurrent state.

    The recurrent state stored with a step is the state *before* that step
    (before any episode-start reset), so training windows start from it exactly.
    """

    def __init__(
        self,
        policy: PolicyNetwork,
        curiosity: Curiosity,
        num_envs: int,
        device: torch.device,
        precision: str = "fp32",
        who: Mapping[str, PluginIdentity] | None = None,
    ) -> None:
        """Create the agent with a zero recurrent state.

        Args:
            policy: The acting network.
            curiosity: The curiosity (online ones score observations here).
            num_envs: Worlds acted for at once.
            device: Where the policy runs.
            precision: ``fp32``, or ``bf16`` autocast on CUDA.
            who: The ``policy`` and ``curiosity`` plugins, named in fault messages.
        """
        self.policy = policy
        self.curiosity = curiosity
        who = who or {}
        self.policy_who = who.get("policy", UNNAMED_POLICY)
        self.curiosity_who = who.get("curiosity", UNNAMED_CURIOSITY)
        self.num_envs = num_envs
        # Widths of the internal action's columns trained as policy groups (none: ()).
        self.groups = check_internal_groups(self.policy_who, policy)
        self.device = device
        self.precision = precision
        self.hidden = policy.initial_state(num_envs, device)
        self.prev_actions: torch.Tensor | None = None

    def _score(
        self, obs: torch.Tensor, starts: torch.Tensor, out: PolicyStep
    ) -> torch.Tensor | None:
        # A mechanism that owns the policy scores inside it; the others in agent_step.
        method = "the policy network's PolicyStep.intrinsic"
        reward = out.intrinsic
        if reward is None:
            method = "agent_step()"
            with blame(self.curiosity_who, method):
                reward = self.curiosity.agent_step(obs, self.prev_actions, starts)
        if reward is None:
            return None
        return check_rewards(self.curiosity_who, method, reward, (self.num_envs,)).cpu()

    def _sample(self, out: PolicyStep) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample world and internal actions; return them with group 0's joint log-probability.

        With policy groups the internal columns are the groups' (see :meth:`_groups`).
        """
        actions = out.dist.sample()
        if out.internal is None:
            internal = actions.new_zeros(actions.shape[0], 0, dtype=torch.float32)
            return actions, internal, out.dist.log_prob(actions)
        internal = out.internal.sample()
        return actions, internal, out.log_prob(actions, None if self.groups else internal)

    def _groups(self, out: PolicyStep, internal: torch.Tensor | None) -> GroupOutputs:
        """Check and record the groups' outputs (``internal``: the sampled columns, or None)."""
        if not self.groups:
            return GroupOutputs.none(self.num_envs)
        rewards, values, acting = check_policy_groups(
            self.policy_who, "forward()", out, self.num_envs, len(self.groups), rewards=True
        )
        assert rewards is not None
        log_probs = (
            torch.zeros_like(rewards)
            if internal is None
            else out.group_log_probs(internal, self.groups).float()
        )
        return GroupOutputs(
            log_probs.cpu(), values.detach().float().cpu(), rewards.cpu(), acting.cpu()
        )

    @torch.inference_mode()
    def act(
        self,
        observations: torch.Tensor,
        episode_starts: npt.NDArray[np.bool_],
        score: bool = False,
    ) -> AgentStep:
        """Sample actions for the current observations.

        Args:
            observations: ``(E, ...)`` current observations (the representation's
                latents), on the CPU.
            episode_starts: ``(E,)`` which of them start a new episode.
            score: Ask the online curiosity for the reward of the transition that
                produced these observations.

        Returns:
            The step record for the rollout (actions included).
        """
        obs_cpu = observations
        starts_cpu = torch.from_numpy(np.asarray(episode_starts, dtype=np.bool_))
        obs = obs_cpu.to(self.device)
        starts = starts_cpu.to(self.device)
        hidden_before = self.hidden
        with autocast_context(self.device, self.precision), blame(self.policy_who, "forward()"):
            out = self.policy(obs, hidden_before, reset=starts)
            actions, internal, log_probs = self._sample(out)
            groups = self._groups(out, internal)
            self.hidden = self.policy.fold_action(out.hidden, actions, internal)
        online_reward = self._score(obs, starts, out) if score else None
        self.prev_actions = actions
        values = out.values
        step = AgentStep(
            observations=obs_cpu,
            episode_starts=starts_cpu,
            hidden=hidden_before.float().cpu(),
            actions=actions.cpu(),
            internal=internal.float().cpu(),
            log_probs=log_probs.float().cpu(),
            values={k: v.float().cpu() for k, v in values.items()},
            online_reward=online_reward,
            groups=groups,
        )
        return step

    @torch.inference_mode()
    def bootstrap(
        self,
        observations: torch.Tensor,
        episode_starts: npt.NDArray[np.bool_],
        score: bool = False,
    ) -> Bootstrap:
        """Value of the observations after a rollout, without advancing the agent.

        Args:
            observations: ``(E, ...)`` the observations (latents) after the rollout's last step.
            episode_starts: ``(E,)`` which of them start a new episode.
            score: Ask the online curiosity for the reward of the rollout's last transition.

        Returns:
            Values per stream ``(E,)``, the online reward of the last step (or None)
            and the policy groups' outputs there.
        """
        obs = observations.to(self.device)
        starts = torch.from_numpy(np.asarray(episode_starts, dtype=np.bool_)).to(self.device)
        with autocast_context(self.device, self.precision), blame(self.policy_who, "forward()"):
            out = self.policy(obs, self.hidden, reset=starts)
            groups = self._groups(out, None)
        online_reward = self._score(obs, starts, out) if score else None
        return Bootstrap({k: v.float() for k, v in out.values.items()}, online_reward, groups)

    def state_dict(self) -> dict[str, Any]:
        """Return the recurrent state and the last actions."""
        return {
            "hidden": self.hidden.cpu(),
            "prev_actions": None if self.prev_actions is None else self.prev_actions.cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.hidden = state["hidden"].to(self.device)
        prev = state["prev_actions"]
        self.prev_actions = None if prev is None else prev.to(self.device)
