"""The training buffer: fills up, then replaces a random slot with a fixed probability."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

EULER_GAMMA = 0.5772156649015329


def replace_probability(capacity: int, survival_frames: int) -> float:
    """Return the replacement probability that keeps a frame ``survival_frames`` on average.

    pamiq-core's rule (``RandomReplacementBuffer``, expected survival length):
    ``capacity / survival * (ln capacity + gamma)``, clamped to [0, 1]; 0.0969
    for the reference's 512 frames and 36,000 (an hour at 10 fps).
    """
    p = capacity / survival_frames * (math.log(capacity) + EULER_GAMMA)
    return min(max(p, 0.0), 1.0)


class FrameBuffer:
    """Preprocessed uint8 frames on the CPU, replaced at random once full.

    Not thread-safe: the representation guards it with its own lock.

    Attributes:
        frames: ``(capacity, C, S, S)`` uint8 storage; the first ``size`` slots are filled.
        size: Filled slots.
        probability: Chance that a frame offered to a full buffer replaces one.
        generator: Draws the replacement decisions and slots.
    """

    def __init__(
        self,
        capacity: int,
        frame_shape: tuple[int, int, int],
        probability: float,
        generator: torch.Generator,
    ) -> None:
        self.frames = torch.zeros((capacity, *frame_shape), dtype=torch.uint8)
        self.size = 0
        self.probability = probability
        self.generator = generator

    @property
    def capacity(self) -> int:
        """Return the number of slots."""
        return int(self.frames.shape[0])

    def slot(self) -> int | None:
        """Decide where the next frame goes: the next empty slot, a random one, or nowhere.

        Deciding before the frame is preprocessed keeps ``observe`` cheap: most
        frames offered to a full buffer are never resized.
        """
        if self.size < self.capacity:
            self.size += 1
            return self.size - 1
        # pamiq-core keeps the frame when a uniform draw is <= p, then picks a slot.
        if float(torch.rand((), generator=self.generator)) > self.probability:
            return None
        return int(torch.randint(self.capacity, (1,), generator=self.generator))

    def put(self, slot: int, frame: Tensor) -> None:
        """Store a ``(C, S, S)`` uint8 frame in ``slot``."""
        self.frames[slot].copy_(frame)

    def snapshot(self) -> Tensor:
        """Return a copy of the filled slots, ``(size, C, S, S)``."""
        return self.frames[: self.size].clone()

    def state_dict(self) -> dict[str, Any]:
        """Return the filled frames and the generator's state."""
        return {"frames": self.snapshot(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        frames: Tensor = state["frames"]
        if frames.shape[0] > self.capacity or frames.shape[1:] != self.frames.shape[1:]:
            raise ValueError(
                f"buffer state holds frames {tuple(frames.shape)}, which do not fit a buffer "
                f"of {tuple(self.frames.shape)}"
            )
        self.frames.zero_()
        self.frames[: frames.shape[0]].copy_(frames)
        self.size = int(frames.shape[0])
        self.generator.set_state(state["generator"])
