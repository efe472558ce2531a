"""What one training phase gets: a finished rollout, time-major, on the training device.

:class:`RolloutBatch` is what the collector hands over; :class:`Sequences` is
what a PPO gradient step reads windows from (a rollout, or windows drawn from
the replay buffer laid side by side).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from pamiqx.api.curiosity import Transitions


@attrs.frozen
class GroupSteps:
    """What the agent recorded for a policy network's extra groups, ``(T, E, G)``.

    See :attr:`pamiqx.api.PolicyNetwork.internal_groups`. Rewards are stored at the
    step that scored them (the group's reward of the period ending there); the
    learner credits them to the group's previous acting step
    (:mod:`pamiqx.learner.groups`).

    Attributes:
        log_probs: Each group's log-probability of its columns when they were taken
            (0 where it did not act).
        values: Each group's value estimate at ``o_t``.
        rewards: Each group's reward scored at ``o_t``.
        acting: bool, the group acted at step ``t``.
        last_values: ``(E, G)`` values at ``o_T`` (the bootstrap step).
        last_rewards: ``(E, G)`` rewards scored at ``o_T``.
        last_acting: ``(E, G)`` whether each group acts at ``o_T``.
    """

    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    acting: torch.Tensor
    last_values: torch.Tensor
    last_rewards: torch.Tensor
    last_acting: torch.Tensor

    def to(self, device: torch.device) -> GroupSteps:
        """Return the record on ``device``."""
        return GroupSteps(
            **{f.name: getattr(self, f.name).to(device) for f in attrs.fields(GroupSteps)}
        )


@attrs.define
class RolloutBatch:
    """A full rollout on the training device, time-major ``(T, E, ...)``.

    Attributes:
        observations: ``o_t``.
        next_observations: ``o_{t+1}`` (the reset observation where ``dones``).
        actions: ``a_t``.
        internal: internal actions ``z_t`` taken with ``a_t``, ``(T, E, Z)`` (``Z`` may be 0).
        log_probs: joint log-probability of ``a_t`` and ``z_t`` when they were taken
            (of ``a_t`` alone when ``z_t``'s columns belong to policy groups).
        values: value estimates at ``o_t`` per stream (``ext``, ``int``).
        last_values: value estimates at ``o_T`` per stream, ``(E,)``.
        rewards_ext: extrinsic reward of ``a_t``.
        rewards_int_online: intrinsic rewards scored while acting (online curiosity).
        dones: ``a_t`` ended an episode.
        episode_starts: ``o_t`` started an episode (recurrent state was reset).
        hidden: recurrent state before step ``t``, ``(T, E, H)``.
        groups: the extra policy groups' records, or None for a network without them.
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
    groups: GroupSteps | None = None

    def to(self, device: torch.device) -> RolloutBatch:
        """Return the batch with every tensor on ``device`` (one transfer per tensor)."""
        moved: dict[str, Any] = {}
        for field in attrs.fields(RolloutBatch):
            value = getattr(self, field.name)
            if value is None:
                moved[field.name] = None
            elif isinstance(value, dict):
                moved[field.name] = {k: v.to(device) for k, v in value.items()}
            else:
                moved[field.name] = value.to(device)
        return RolloutBatch(**moved)

    def sequences(self, sub_log_probs: torch.Tensor | None = None) -> Sequences:
        """Return the view PPO's gradient steps read windows from.

        Args:
            sub_log_probs: ``(T, E, K)`` acting-time log-probabilities per sub-action
                (``policy.multi_discrete_ratio = "per-action"``), or None.
        """
        return Sequences(
            observations=self.observations,
            actions=self.actions,
            internal=self.internal,
            log_probs=self.log_probs,
            sub_log_probs=sub_log_probs,
            values=self.values,
            episode_starts=self.episode_starts,
            hidden=self.hidden,
        )

    def transitions(self, online: bool) -> Transitions:
        """Return the view a curiosity mechanism gets."""
        return Transitions(
            observations=self.observations,
            next_observations=self.next_observations,
            actions=self.actions,
            dones=self.dones,
            intrinsic=self.rewards_int_online if online else None,
        )


@attrs.frozen
class Sequences:
    """Steps a PPO gradient step trains on, time-major ``(T, N, ...)``.

    ``N`` is the worlds of a rollout, or the windows drawn from the replay buffer
    (then ``T`` is the window length and column ``n`` is one window).

    Attributes:
        observations: ``o_t``.
        actions: ``a_t``.
        internal: internal actions ``z_t``, ``(T, N, Z)``.
        log_probs: joint log-probability of ``a_t`` and ``z_t`` when they were taken
            (of ``a_t`` alone when ``z_t``'s columns belong to policy groups).
        sub_log_probs: ``(T, N, K)`` their log-probabilities per sub-action (the
            internal action last) for per-action ratios, or None.
        values: value estimates at ``o_t`` per stream, recorded while acting.
        episode_starts: ``o_t`` started an episode.
        hidden: recurrent state before step ``t``, ``(T, N, H)``.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    internal: torch.Tensor
    log_probs: torch.Tensor
    sub_log_probs: torch.Tensor | None
    values: dict[str, torch.Tensor]
    episode_starts: torch.Tensor
    hidden: torch.Tensor
