"""The replay-windows regime's storage: the last ``replay_size`` steps of every world.

Under ``policy.regime = "replay-windows"`` (the reference experiments' regime)
the learner keeps a FIFO buffer of the most recent steps, with everything the
rollout stores (the recurrent state *before* each step included), and trains on
random windows of consecutive steps drawn from it (:meth:`ReplayBuffer.windows`).

Advantages are computed per window, from the values stored when the steps were
taken. The bootstrap of a window is the stored value of the step right after it;
a window that ends at the newest stored step bootstraps from the value the
collector computed for the observation after that step when it handed the steps
over (the same bootstrap the ``rollouts`` regime uses). So every stored step can
be trained on, and no step is kept only as a bootstrap; GAE never reaches past a
window, which makes a window's advantages independent of where in the buffer it
lies (the reference ran GAE over the whole buffer and then cut windows).

A network with extra policy groups (:mod:`pamiqx.learner.groups`) also stores
each group's acting-time log-probability, value, reward and acting mask per
step; a window's group steps look their next acting step up in the whole
buffer (and the hand-over's bootstrap step), so a group step near a window's
end still has its reward.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch

from pamiqx.learner.batch import RolloutBatch, Sequences
from pamiqx.learner.groups import GroupRecord, group_targets

# What a stored step holds, all (N, E, ...) tensors.
STEP_FIELDS = (
    "observations",
    "actions",
    "internal",
    "log_probs",
    "values_ext",
    "values_int",
    "rewards_ext",
    "rewards_int",
    "dones",
    "episode_starts",
    "hidden",
)
# Present only when per-action ratios are trained, and for a network with policy groups.
GROUP_FIELDS = ("group_log_probs", "group_values", "group_rewards", "group_acting")
OPTIONAL_FIELDS = ("sub_log_probs", *GROUP_FIELDS)


def replay_steps(
    batch: RolloutBatch, rewards_int: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """Return a hand-over's steps as the buffer stores them, and its groups' bootstrap step.

    Args:
        batch: The steps the collector handed over.
        rewards_int: ``(T, E)`` their intrinsic rewards, scaled as they arrived.

    Returns:
        The :data:`STEP_FIELDS` (and, for a network with policy groups, the
        :data:`GROUP_FIELDS`), and the groups' ``next_groups`` (None without groups).
    """
    steps = {
        "observations": batch.observations,
        "actions": batch.actions,
        "internal": batch.internal,
        "log_probs": batch.log_probs,
        "values_ext": batch.values["ext"],
        "values_int": batch.values["int"],
        "rewards_ext": batch.rewards_ext,
        "rewards_int": rewards_int,
        "dones": batch.dones,
        "episode_starts": batch.episode_starts,
        "hidden": batch.hidden,
    }
    g = batch.groups
    if g is None:
        return steps, None
    steps.update(
        group_log_probs=g.log_probs,
        group_values=g.values,
        group_rewards=g.rewards,
        group_acting=g.acting,
    )
    return steps, {"acting": g.last_acting, "rewards": g.last_rewards, "values": g.last_values}


@attrs.frozen
class Windows:
    """Windows drawn from the buffer, laid side by side: ``(L, W, ...)``.

    Attributes:
        sequences: What the gradient steps read (column ``w`` is window ``w``).
        rewards_ext: ``(L, W)`` extrinsic rewards.
        rewards_int: ``(L, W)`` intrinsic rewards (scaled as they arrived).
        dones: ``(L, W)`` the action ended an episode.
        bootstrap: ``(W,)`` value of the step after each window, per stream.
        starts: ``(W,)`` first step of each window (0 = the oldest stored step).
        envs: ``(W,)`` the world of each window.
        groups: ``(L, W, G)`` the extra policy groups' steps and targets, or None.
    """

    sequences: Sequences
    rewards_ext: torch.Tensor
    rewards_int: torch.Tensor
    dones: torch.Tensor
    bootstrap: dict[str, torch.Tensor]
    starts: torch.Tensor
    envs: torch.Tensor
    groups: GroupRecord | None = None


class ReplayBuffer:
    """FIFO storage of the last ``capacity`` steps of every world, oldest first.

    Steps arrive in blocks (the steps the collector handed over); the oldest
    steps are dropped once more than ``capacity`` are held. The tensors stay on
    the device the steps arrived on (the training device).
    """

    def __init__(self, capacity: int) -> None:
        """Create an empty buffer.

        Args:
            capacity: Steps per world to keep.

        Raises:
            ValueError: If ``capacity`` is not positive.
        """
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.steps: dict[str, torch.Tensor] = {}
        # Values of the observation after the newest stored step, per stream, (E,).
        self.next_values: dict[str, torch.Tensor] = {}
        # The groups' acting, rewards and values there, (E, G) (only with groups).
        self.next_groups: dict[str, torch.Tensor] = {}

    @property
    def size(self) -> int:
        """Steps per world stored."""
        return 0 if not self.steps else int(self.steps["log_probs"].shape[0])

    @property
    def num_envs(self) -> int:
        """Worlds stored (0 while empty)."""
        return 0 if not self.steps else int(self.steps["log_probs"].shape[1])

    def add(
        self,
        steps: Mapping[str, torch.Tensor],
        next_values: Mapping[str, torch.Tensor],
        next_groups: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        """Append ``(T, E, ...)`` steps after the stored ones and drop the oldest beyond capacity.

        Args:
            steps: One tensor per name of :data:`STEP_FIELDS` (and, if used,
                ``sub_log_probs`` and the :data:`GROUP_FIELDS`), all with the same
                ``T`` and ``E``.
            next_values: ``(E,)`` value of the observation after the last new step,
                per stream (``ext``, ``int``).
            next_groups: With the group fields: ``acting``, ``rewards`` and
                ``values`` ``(E, G)`` of the groups at that observation.

        Raises:
            ValueError: If fields are missing or differ from the stored ones, or the
                shapes disagree.
        """
        names = set(steps)
        missing = set(STEP_FIELDS) - names
        unknown = names - set(STEP_FIELDS) - set(OPTIONAL_FIELDS)
        if missing or unknown:
            raise ValueError(
                f"replay steps need {sorted(STEP_FIELDS)}: missing {sorted(missing)}, "
                f"unknown {sorted(unknown)}"
            )
        if self.steps and names != set(self.steps):
            raise ValueError(
                f"replay steps hold {sorted(names)}, the buffer holds {sorted(self.steps)}"
            )
        lead = tuple(steps["log_probs"].shape[:2])
        for name, tensor in steps.items():
            if tuple(tensor.shape[:2]) != lead:
                raise ValueError(f"replay field {name} is {tuple(tensor.shape)}, expected {lead}")
        if self.steps and lead[1] != self.num_envs:
            raise ValueError(f"replay steps have {lead[1]} worlds, the buffer {self.num_envs}")
        grouped = set(GROUP_FIELDS) & names
        if grouped and (grouped != set(GROUP_FIELDS) or next_groups is None):
            raise ValueError(f"replay group steps need all of {list(GROUP_FIELDS)} and next_groups")
        for name, tensor in steps.items():
            stored = self.steps.get(name)
            joined = tensor if stored is None else torch.cat([stored, tensor.to(stored.device)])
            self.steps[name] = joined[-self.capacity :].clone()
        self.next_values = {k: v.detach().clone() for k, v in next_values.items()}
        if grouped and next_groups is not None:
            self.next_groups = {k: v.detach().clone() for k, v in next_groups.items()}

    def windows(self, starts: torch.Tensor, envs: torch.Tensor, length: int) -> Windows:
        """Gather windows of ``length`` consecutive steps.

        Args:
            starts: ``(W,)`` first step of each window, in ``[0, size - length]``.
            envs: ``(W,)`` the world of each window.
            length: Steps per window.

        Returns:
            The windows side by side, each with its bootstrap value.

        Raises:
            ValueError: If a window does not lie inside the stored steps.
        """
        size = self.size
        if length <= 0 or length > size:
            raise ValueError(f"window length {length} does not fit {size} stored steps")
        if starts.numel() and (int(starts.min()) < 0 or int(starts.max()) > size - length):
            raise ValueError(f"window starts must lie in [0, {size - length}]")
        device = self.steps["log_probs"].device
        starts, envs = starts.to(device), envs.to(device)
        t_index = starts.unsqueeze(0) + torch.arange(length, device=device).unsqueeze(1)
        e_index = envs.unsqueeze(0).expand(length, -1)
        got = {name: tensor[t_index, e_index] for name, tensor in self.steps.items()}
        # The step after the window: stored, or past the newest one (the hand-over's value).
        after = starts + length
        inside = after < size
        after_clamped = after.clamp(max=size - 1)
        bootstrap = {
            stream: torch.where(
                inside,
                self.steps[f"values_{stream}"][after_clamped, envs],
                self.next_values[stream].to(device)[envs],
            )
            for stream in ("ext", "int")
        }
        sequences = Sequences(
            observations=got["observations"],
            actions=got["actions"],
            internal=got["internal"],
            log_probs=got["log_probs"],
            sub_log_probs=got.get("sub_log_probs"),
            values={"ext": got["values_ext"], "int": got["values_int"]},
            episode_starts=got["episode_starts"],
            hidden=got["hidden"],
        )
        return Windows(
            sequences=sequences,
            rewards_ext=got["rewards_ext"],
            rewards_int=got["rewards_int"],
            dones=got["dones"],
            bootstrap=bootstrap,
            starts=starts,
            envs=envs,
            groups=self._group_windows(t_index, e_index),
        )

    def _group_windows(self, t_index: torch.Tensor, e_index: torch.Tensor) -> GroupRecord | None:
        """Gather the groups' steps of the windows, with targets looked up in the whole buffer."""
        if "group_acting" not in self.steps:
            return None
        acting, values = self.steps["group_acting"], self.steps["group_values"]
        nxt = self.next_groups
        after = (nxt["acting"], nxt["rewards"], nxt["values"], self.steps["dones"][-1])
        targets = group_targets(
            acting, self.steps["group_rewards"], values, self.steps["episode_starts"], after
        )
        return GroupRecord(
            log_probs=self.steps["group_log_probs"][t_index, e_index],
            values=values[t_index, e_index],
            acting=acting[t_index, e_index],
            targets=targets.map(lambda x: x[t_index, e_index]),
        )

    def state_dict(self) -> dict[str, Any]:
        """Return the stored steps and the bootstrap values (CPU copies)."""
        state: dict[str, Any] = {
            "capacity": self.capacity,
            "steps": {k: v.detach().cpu().clone() for k, v in self.steps.items()},
            "next_values": {k: v.detach().cpu().clone() for k, v in self.next_values.items()},
        }
        if self.next_groups:  # only with groups, so other checkpoints keep their layout
            state["next_groups"] = {
                k: v.detach().cpu().clone() for k, v in self.next_groups.items()
            }
        return state

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        """Restore :meth:`state_dict` onto ``device``.

        Raises:
            ValueError: The saved buffer holds more steps than this one keeps.
        """
        steps = {k: v.to(device) for k, v in state["steps"].items()}
        if steps and int(steps["log_probs"].shape[0]) > self.capacity:
            raise ValueError(
                f"the saved replay buffer holds {int(steps['log_probs'].shape[0])} steps, "
                f"more than policy.replay_size ({self.capacity})"
            )
        self.steps = steps
        self.next_values = {k: v.to(device) for k, v in state["next_values"].items()}
        groups = state.get("next_groups", {})
        self.next_groups = {k: v.to(device) for k, v in groups.items()}
