"""Rollout storage: ``T`` steps of ``E`` worlds in preallocated CPU tensors.

Everything the learner and the curiosity need for one training phase. It is
filled step by step by the agent, moved to the training device once per
batch, and saved whole in checkpoints (a run interrupted mid-rollout resumes
at the same step with the same partial rollout).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import torch

from pamiqx.api import ActionSpec, ObservationSpec, Transitions
from pamiqx.runtime.agent import AgentStep

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


@attrs.define
class RolloutBatch:
    """A full rollout on the training device, time-major ``(T, E, ...)``.

    Attributes:
        observations: ``o_t``.
        next_observations: ``o_{t+1}`` (the reset observation where ``dones``).
        actions: ``a_t``.
        internal: internal actions ``z_t`` taken with ``a_t``, ``(T, E, Z)`` (``Z`` may be 0).
        log_probs: joint log-probability of ``a_t`` and ``z_t`` when they were taken.
        values: value estimates at ``o_t`` per stream (``ext``, ``int``).
        last_values: value estimates at ``o_T`` per stream, ``(E,)``.
        rewards_ext: extrinsic reward of ``a_t``.
        rewards_int_online: intrinsic rewards scored while acting (online curiosity).
        dones: ``a_t`` ended an episode.
        episode_starts: ``o_t`` started an episode (recurrent state was reset).
        hidden: recurrent state before step ``t``, ``(T, E, H)``.
    """

    observations: torch.Tensor
    next_observations: torch.Tensor
    actions: torch.Tensor
    internal: torch.Tensor
    log_probs: torch.Tensor
    values: dict[str, torch.Tensor]
    last_values: dict[str, torch.Tensor]
    rewards_ext: torch.Tensor
    rewards_int_online: torch.Tensor
    dones: torch.Tensor
    episode_starts: torch.Tensor
    hidden: torch.Tensor

    def to(self, device: torch.device) -> RolloutBatch:
        """Return the batch with every tensor on ``device`` (one transfer per tensor)."""
        moved: dict[str, Any] = {}
        for field in attrs.fields(RolloutBatch):
            value = getattr(self, field.name)
            if isinstance(value, dict):
                moved[field.name] = {k: v.to(device) for k, v in value.items()}
            else:
                moved[field.name] = value.to(device)
        return RolloutBatch(**moved)

    def transitions(self, online: bool) -> Transitions:
        """Return the view a curiosity mechanism gets."""
        return Transitions(
            observations=self.observations,
            next_observations=self.next_observations,
            actions=self.actions,
            dones=self.dones,
            intrinsic=self.rewards_int_online if online else None,
        )


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
    ) -> None:
        """Allocate the tensors (``internal_dim``: width of the policy's internal action)."""
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
        self.size = 0

    @property
    def full(self) -> bool:
        """Return True when ``steps`` steps are stored."""
        return self.size >= self.steps

    def add(
        self,
        observations: torch.Tensor,
        episode_starts: torch.Tensor,
        hidden: torch.Tensor,
        actions: torch.Tensor,
        internal: torch.Tensor,
        log_probs: torch.Tensor,
        values: dict[str, torch.Tensor],
    ) -> None:
        """Store what the agent saw and did at the current step (all ``(E, ...)`` CPU tensors)."""
        i = self.size
        self.observations[i] = observations
        self.episode_starts[i] = episode_starts
        self.hidden[i] = hidden
        self.actions[i] = actions
        self.internal[i] = internal
        self.log_probs[i] = log_probs
        self.values_ext[i] = values["ext"]
        self.values_int[i] = values["int"]

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

    def record(self, step: AgentStep) -> None:
        """Store an agent step, and the online reward it scored for the previous step."""
        if step.online_reward is not None and self.size > 0:
            self.set_online_reward(self.size - 1, step.online_reward)
        self.add(
            step.observations,
            step.episode_starts,
            step.hidden,
            step.actions,
            step.internal,
            step.log_probs,
            step.values,
        )

    def score_last(self, online_reward: torch.Tensor | None) -> None:
        """Store the online reward of the rollout's last step (scored at bootstrap time)."""
        if online_reward is not None:
            self.set_online_reward(self.size - 1, online_reward)

    def batch(self, device: torch.device, last_values: dict[str, torch.Tensor]) -> RolloutBatch:
        """Return the full rollout on ``device`` (one transfer per tensor)."""
        obs = self.observations.to(device, non_blocking=True)
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
        )

    def clear(self) -> None:
        """Start a new rollout (tensors are reused)."""
        self.size = 0

    def state_dict(self) -> dict[str, Any]:
        """Return the stored steps (only the filled part) for a checkpoint."""
        state: dict[str, Any] = {name: getattr(self, name)[: self.size].clone() for name in _FIELDS}
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
        self.last_observations.copy_(state["last_observations"])
        self.size = size
