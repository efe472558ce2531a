"""Rollout storage: ``T`` steps of ``E`` worlds in preallocated CPU tensors.

Everything the learner and the curiosity need for one training phase. The
collector fills it step by step, it becomes a :class:`RolloutBatch` on the
training device once full, and a partial one is saved whole in checkpoints (a
run interrupted mid-rollout resumes at the same step with the same partial
rollout).

A policy network with extra policy groups also gets ``(T, E, G)`` records of
each group's log-probability, value, reward and acting mask (and the
bootstrap step's, at hand-over); they are sized from the first step stored, so
a caller need not know ``G``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from pamiqx.api.plugin import ActionSpec, ObservationSpec
from pamiqx.learner.batch import GroupSteps, RolloutBatch
from pamiqx.runtime.agent import AgentStep, GroupOutputs

_FIELDS = (
    "observations",
    "actions",
    "internal",
    "log_probs",
    "values_ext",
    "values_int",
    "rewards_ext",
    "rewards_int_online",
    "dones",
    "episode_starts",
    "hidden",
)
# Stored (and saved) only for a network with policy groups.
_GROUP_FIELDS = ("group_log_probs", "group_values", "group_rewards", "group_acting")


class Rollout:
    """Preallocated storage for ``steps`` steps of ``num_envs`` worlds."""

    def __init__(
        self,
        steps: int,
        num_envs: int,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
        hidden_dim: int,
        internal_dim: int = 0,
        groups: int = 0,
    ) -> None:
        """Allocate the tensors.

        Args:
            steps: Steps per rollout.
            num_envs: Worlds.
            observation_spec: What is observed (the representation's latents).
            action_spec: The world's actions.
            hidden_dim: Width of the policy's recurrent state.
            internal_dim: Width of the policy's internal action.
            groups: The policy's extra groups (also found from the first step stored).
        """
        self.steps = steps
        self.num_envs = num_envs
        obs_dtype = torch.uint8 if observation_spec.dtype == "uint8" else torch.float32
        action_shape = () if action_spec.kind == "discrete" else (len(action_spec.nvec),)
        t, e = steps, num_envs
        self.observations = torch.zeros((t, e, *observation_spec.shape), dtype=obs_dtype)
        self.last_observations = torch.zeros((e, *observation_spec.shape), dtype=obs_dtype)
        self.actions = torch.zeros((t, e, *action_shape), dtype=torch.int64)
        self.internal = torch.zeros((t, e, internal_dim))
        self.log_probs = torch.zeros((t, e))
        self.values_ext = torch.zeros((t, e))
        self.values_int = torch.zeros((t, e))
        self.rewards_ext = torch.zeros((t, e))
        self.rewards_int_online = torch.zeros((t, e))
        self.dones = torch.zeros((t, e), dtype=torch.bool)
        self.episode_starts = torch.zeros((t, e), dtype=torch.bool)
        self.hidden = torch.zeros((t, e, hidden_dim))
        self._allocate_groups(groups)
        self.size = 0

    def _allocate_groups(self, groups: int) -> None:
        t, e = self.steps, self.num_envs
        self.groups = groups
        self.group_log_probs = torch.zeros((t, e, groups))
        self.group_values = torch.zeros((t, e, groups))
        self.group_rewards = torch.zeros((t, e, groups))
        self.group_acting = torch.zeros((t, e, groups), dtype=torch.bool)

    @property
    def full(self) -> bool:
        """Return True when ``steps`` steps are stored."""
        return self.size >= self.steps

    def add(self, step: AgentStep) -> None:
        """Store what the agent saw and did at the current step (all ``(E, ...)`` CPU tensors)."""
        i = self.size
        width = step.groups.values.shape[-1]
        if width != self.groups:
            if i > 0:
                raise ValueError(f"a step has {width} policy groups, the rollout {self.groups}")
            self._allocate_groups(width)
        if width:
            self.group_log_probs[i] = step.groups.log_probs
            self.group_values[i] = step.groups.values
            self.group_rewards[i] = step.groups.rewards
            self.group_acting[i] = step.groups.acting
        self.observations[i] = step.observations
        self.episode_starts[i] = step.episode_starts
        self.hidden[i] = step.hidden
        self.actions[i] = step.actions
        self.internal[i] = step.internal
        self.log_probs[i] = step.log_probs
        self.values_ext[i] = step.values["ext"]
        self.values_int[i] = step.values["int"]

    def complete_step(
        self,
        rewards_ext: npt.NDArray[np.float32],
        dones: npt.NDArray[np.bool_],
        next_observations: torch.Tensor,
    ) -> None:
        """Store the outcome of the current step's action and advance."""
        i = self.size
        self.rewards_ext[i] = torch.from_numpy(rewards_ext)
        self.dones[i] = torch.from_numpy(dones)
        self.last_observations.copy_(next_observations)
        self.size += 1

    def set_online_reward(self, index: int, rewards: torch.Tensor) -> None:
        """Store intrinsic rewards an online curiosity scored for step ``index``."""
        self.rewards_int_online[index] = rewards

    def batch(
        self,
        device: torch.device,
        last_values: dict[str, torch.Tensor],
        last_groups: GroupOutputs | None = None,
    ) -> RolloutBatch:
        """Return the full rollout on ``device`` (one transfer per tensor).

        Args:
            device: The training device.
            last_values: ``(E,)`` values per stream at the observation after the rollout.
            last_groups: The policy groups' outputs there (needed with groups).
        """
        obs = self.observations.to(device, non_blocking=True)
        groups = None
        if self.groups:
            assert last_groups is not None, "a rollout with policy groups needs their bootstrap"
            groups = GroupSteps(
                log_probs=self.group_log_probs,
                values=self.group_values,
                rewards=self.group_rewards,
                acting=self.group_acting,
                last_values=last_groups.values,
                last_rewards=last_groups.rewards,
                last_acting=last_groups.acting,
            ).to(device)
        last = self.last_observations.to(device).unsqueeze(0)
        return RolloutBatch(
            observations=obs,
            next_observations=torch.cat([obs[1:], last], dim=0),
            actions=self.actions.to(device),
            internal=self.internal.to(device),
            log_probs=self.log_probs.to(device),
            values={"ext": self.values_ext.to(device), "int": self.values_int.to(device)},
            last_values={k: v.to(device) for k, v in last_values.items()},
            rewards_ext=self.rewards_ext.to(device),
            rewards_int_online=self.rewards_int_online.to(device),
            dones=self.dones.to(device),
            episode_starts=self.episode_starts.to(device),
            hidden=self.hidden.to(device),
            groups=groups,
        )

    def state_dict(self) -> dict[str, Any]:
        """Return the stored steps (only the filled part) for a checkpoint."""
        state: dict[str, Any] = {name: getattr(self, name)[: self.size].clone() for name in _FIELDS}
        if self.groups:  # only with groups, so other checkpoints keep their layout
            for name in _GROUP_FIELDS:
                state[name] = getattr(self, name)[: self.size].clone()
        state["last_observations"] = self.last_observations.clone()
        state["size"] = self.size
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a partial rollout."""
        size = int(state["size"])
        if size > self.steps:
            raise ValueError(f"checkpoint rollout has {size} steps, more than {self.steps}")
        for name in _FIELDS:
            getattr(self, name)[:size] = state[name]
        saved = state.get("group_values")
        self._allocate_groups(0 if saved is None else int(saved.shape[-1]))
        if self.groups:
            for name in _GROUP_FIELDS:
                getattr(self, name)[:size] = state[name]
        self.last_observations.copy_(state["last_observations"])
        self.size = size
