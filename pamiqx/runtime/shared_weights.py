"""Weights handed from the training process to the acting process through shared memory.

The trainer copies the trained modules' tensors (parameters and buffers) into
one shared-memory copy under a lock and counts a new version; the acting
process copies them into its own modules at its next step when the version
changed. Neither side ever waits for the other longer than one copy of the
weights, and no tensor is pickled.

The shared copy must exist before the acting process is forked: the child
inherits the mappings (``fork`` start method, CPU tensors only).
"""

from __future__ import annotations

import multiprocessing.context
import time
from collections.abc import Callable, Mapping

import torch
from torch import nn


def _tensors(modules: Mapping[str, nn.Module]) -> list[torch.Tensor]:
    """Every parameter and buffer of ``modules`` in a fixed order (their ``state_dict``)."""
    return [t for m in modules.values() for t in m.state_dict(keep_vars=False).values()]


class SharedWeights:
    """One shared-memory copy of some modules' weights, with a version and the trainer's step.

    Besides the weights it carries what bounds and measures staleness: the
    trainer's current optimizer step, the version acting holds, and whether acting
    is stepping (not paused or finished), so the trainer never waits for a pull
    that cannot come.

    Attributes:
        version: Published versions so far (0: the weights at the start).
        step: The learner's optimizer steps when the current version was published.
        trainer_step: The learner's optimizer steps now (as last noted).
        taken_step: The optimizer steps of the weights acting holds.
    """

    def __init__(
        self, modules: Mapping[str, nn.Module], context: multiprocessing.context.BaseContext
    ) -> None:
        """Allocate the shared copy from the modules' current weights.

        Args:
            modules: The trained modules whose weights acting needs (by name).
            context: The multiprocessing context the acting process starts from.
        """
        # torch leaves share_memory_ unannotated.
        self._shared = [
            t.detach().to("cpu", copy=True).share_memory_()  # type: ignore[no-untyped-call]
            for t in _tensors(modules)
        ]
        self._lock = context.Lock()
        self._version = context.Value("q", 0, lock=False)
        self._step = context.Value("q", 0, lock=False)
        self._trainer_step = context.Value("q", 0, lock=False)
        self._taken_version = context.Value("q", 0, lock=False)
        self._taken_step = context.Value("q", 0, lock=False)
        self._stepping = context.Value("b", 0, lock=False)

    @property
    def version(self) -> int:
        """Published versions so far."""
        return int(self._version.value)

    @property
    def step(self) -> int:
        """The optimizer steps of the current version."""
        return int(self._step.value)

    @property
    def trainer_step(self) -> int:
        """The learner's optimizer steps, as last noted."""
        return int(self._trainer_step.value)

    @property
    def taken_step(self) -> int:
        """The optimizer steps of the weights acting holds."""
        return int(self._taken_step.value)

    def note_step(self, step: int) -> None:
        """Record the learner's optimizer steps (training side, after each step)."""
        self._trainer_step.value = step

    def publish(self, modules: Mapping[str, nn.Module], step: int) -> int:
        """Copy the trained weights into shared memory (training side); return the version."""
        with torch.no_grad(), self._lock:
            for shared, tensor in zip(self._shared, _tensors(modules), strict=True):
                shared.copy_(tensor.detach())
            self._step.value = step
            self._trainer_step.value = step
            self._version.value += 1
            return int(self._version.value)

    def set_stepping(self, stepping: bool) -> None:
        """Say whether acting steps (acting side): the trainer waits only for a stepping one."""
        self._stepping.value = int(stepping)

    def mark_taken(self, version: int, step: int) -> None:
        """Record the version acting holds (acting side)."""
        self._taken_step.value = step
        self._taken_version.value = version

    def wait_taken(self, version: int, alive: Callable[[], bool]) -> None:
        """Wait until acting holds ``version`` (training side): at most one step of acting.

        Returns at once while acting is paused or finished, or once ``alive`` is False.
        """
        while self._taken_version.value < version and self._stepping.value and alive():
            time.sleep(0.0005)

    def pull(self, modules: Mapping[str, nn.Module], seen: int) -> tuple[int, int] | None:
        """Copy a newer version into ``modules`` (acting side).

        Args:
            modules: The acting copies, laid out as the trained modules.
            seen: The version ``modules`` hold.

        Returns:
            ``(version, step)`` of the copied weights, or None when ``seen`` is current.
        """
        if self._version.value == seen:
            return None
        with torch.no_grad(), self._lock:
            for tensor, shared in zip(_tensors(modules), self._shared, strict=True):
                tensor.copy_(shared)
            version, step = int(self._version.value), int(self._step.value)
        self.mark_taken(version, step)
        return version, step
