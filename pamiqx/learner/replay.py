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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch

from pamiqx.learner.batch import Sequences

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
# Present only when per-action ratios are trained.
OPTIONAL_FIELDS = ("sub_log_probs",)


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
    """

    sequences: Sequences
    rewards_ext: torch.Tensor
    rewards_int: torch.Tensor
    dones: torch.Tensor
    bootstrap: dict[str, torch.Tensor]
    starts: torch.Tensor
    envs: torch.Tensor


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

    @property
    def size(self) -> int:
        """Steps per world stored."""
        return 0 if not self.steps else int(self.steps["log_probs"].shape[0])

    @property
    def num_envs(self) -> int:
        """Worlds stored (0 while empty)."""
        return 0 if not self.steps else int(self.steps["log_probs"].shape[1])

    def add(
        self, steps: Mapping[str, torch.Tensor], next_values: Mapping[str, torch.Tensor]
    ) -> None:
        """Append ``(T, E, ...)`` steps after the stored ones and drop the oldest beyond capacity.

        Args:
            steps: One tensor per name of :data:`STEP_FIELDS` (and, if used,
                ``sub_log_probs``), all with the same ``T`` and ``E``.
            next_values: ``(E,)`` value of the observation after the last new step,
                per stream (``ext``, ``int``).

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
        for name, tensor in steps.items():
            stored = self.steps.get(name)
            joined = tensor if stored is None else torch.cat([stored, tensor.to(stored.device)])
            self.steps[name] = joined[-self.capacity :].clone()
        self.next_values = {k: v.detach().clone() for k, v in next_values.items()}

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
        )

    def state_dict(self) -> dict[str, Any]:
        """Return the stored steps and the bootstrap values (CPU copies)."""
        return {
            "capacity": self.capacity,
            "steps": {k: v.detach().cpu().clone() for k, v in self.steps.items()},
            "next_values": {k: v.detach().cpu().clone() for k, v in self.next_values.items()},
        }

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
