"""The replay-windows regime's memory: the last steps the agent side scored, per world.

Under ``[curiosity] regime = "replay-windows"`` (the reference's forward-dynamics
regime, ``trainers/forward_dynamics.py`` with ``buffers/stacked_hiddens.yaml``) the
agent side remembers every transition it scored together with the recurrent state
its forward model had *before* that step, and training draws windows of
consecutive steps from this memory, each started from its stored state.

:class:`StepMemory` is a ring buffer of named ``(capacity, E, ...)`` tensors: adding
a step is O(1), and :meth:`StepMemory.windows` gathers windows oldest step first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor


class StepMemory:
    """FIFO storage of the last ``capacity`` steps of every world.

    Every step holds the same named fields, each an ``(E, ...)`` tensor; the
    memory keeps them on the device they arrive on. A step with a different
    number of worlds ``E`` empties the memory first (the run's worlds changed).

    Attributes:
        capacity: Steps per world kept.
        added: Steps added since the memory was created (also counted across a
            restore, so that training cadences survive a resume).
    """

    def __init__(self, capacity: int) -> None:
        """Create an empty memory.

        Args:
            capacity: Steps per world kept (the oldest are dropped first).

        Raises:
            ValueError: If ``capacity`` is below 1.
        """
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.added = 0
        self._fields: dict[str, Tensor] = {}
        self._next = 0  # ring slot the next step goes to
        self._size = 0

    @property
    def size(self) -> int:
        """Steps per world held."""
        return self._size

    @property
    def num_envs(self) -> int:
        """Worlds held side by side (0 while empty)."""
        if not self._fields:
            return 0
        return int(next(iter(self._fields.values())).shape[1])

    def add(self, step: Mapping[str, Tensor]) -> None:
        """Append one step of every world.

        Args:
            step: Named ``(E, ...)`` tensors; the same names and shapes every step.
        """
        envs = int(next(iter(step.values())).shape[0])
        if not self._fields or self.num_envs != envs or set(step) != set(self._fields):
            self._fields = {
                name: value.new_zeros((self.capacity, *value.shape)) for name, value in step.items()
            }
            self._next = self._size = 0
        for name, value in step.items():
            self._fields[name][self._next] = value.detach()
        self._next = (self._next + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        self.added += 1

    def windows(self, starts: Tensor, envs: Tensor, length: int) -> dict[str, Tensor]:
        """Gather windows of consecutive steps, laid side by side.

        Args:
            starts: ``(W,)`` first step of each window, 0 being the oldest held step.
            envs: ``(W,)`` world of each window.
            length: Steps per window; ``starts + length`` must not exceed :attr:`size`.

        Returns:
            Each field as ``(length, W, ...)`` (a copy), oldest step first.

        Raises:
            ValueError: If a window reaches past the newest step.
        """
        if int(starts.max()) + length > self._size:
            raise ValueError(f"a window of {length} steps does not fit in {self._size} held")
        oldest = (self._next - self._size) % self.capacity
        offsets = torch.arange(length).unsqueeze(1) + starts.unsqueeze(0)
        rows = (oldest + offsets) % self.capacity
        columns = envs.unsqueeze(0).expand_as(rows)
        return {
            name: value[rows.to(value.device), columns.to(value.device)]
            for name, value in self._fields.items()
        }

    def sample_windows(
        self, count: int, length: int, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """Gather ``count`` windows at uniformly random starts and worlds.

        Args:
            count: Windows to draw (with replacement, as the reference's sampler).
            length: Steps per window (at most :attr:`size`).
            generator: CPU generator of the draw.

        Returns:
            As :meth:`windows`.
        """
        starts = torch.randint(0, self._size - length + 1, (count,), generator=generator)
        envs = torch.randint(0, self.num_envs, (count,), generator=generator)
        return self.windows(starts, envs, length)

    def state_dict(self) -> dict[str, Any]:
        """Return the held steps in order (oldest first) and the counter."""
        if not self._fields:
            return {"added": self.added, "fields": {}}
        oldest = (self._next - self._size) % self.capacity
        rows = (oldest + torch.arange(self._size)) % self.capacity
        fields = {
            name: value[rows.to(value.device)].clone() for name, value in self._fields.items()
        }
        return {"added": self.added, "fields": fields}

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        """Restore :meth:`state_dict` onto ``device`` (keeping the newest ``capacity`` steps)."""
        self._fields, self._next, self._size = {}, 0, 0
        held: dict[str, Tensor] = dict(state["fields"])
        if held:
            count = int(next(iter(held.values())).shape[0])
            for t in range(max(0, count - self.capacity), count):
                self.add({name: value[t].to(device) for name, value in held.items()})
        self.added = int(state["added"])
