"""I-JEPA multi-block masks over a square patch grid, as the reference's collator draws them."""

from __future__ import annotations

import math

import torch
from torch import Tensor


class BlockMasker:
    """Draws the context mask and the predictor's target of one frame at a time.

    Each of ``blocks`` rectangles covers ``U(scale)`` of the patches with aspect
    ratio (width/height) ``U(aspect_ratio)`` and at least ``min_patches`` patches.
    The context encoder sees everything outside their union; the target is one of
    them at random. If fewer than ``min_patches`` patches stay visible,
    ``min_patches`` random patches are unmasked and made targets too.

    The draws follow the reference's order (per block: scale and ratio, top,
    left; then the target's index; then the fallback's permutation), all from
    the generator passed in.
    """

    def __init__(
        self,
        grid: int,
        blocks: int,
        scale: tuple[float, float],
        aspect_ratio: tuple[float, float],
        min_patches: int,
    ) -> None:
        self.grid = grid
        self.patches = grid * grid
        self.blocks = blocks
        self.scale = scale
        self.aspect_ratio = aspect_ratio
        self.min_patches = min_patches

    def rectangle(self, generator: torch.Generator) -> tuple[int, int, int, int]:
        """Return one block as ``(top, bottom, left, right)`` patch coordinates."""
        scale_u, ratio_u = torch.rand(2, generator=generator).tolist()
        area = (self.scale[0] + scale_u * (self.scale[1] - self.scale[0])) * self.patches
        ratio = self.aspect_ratio[0] + ratio_u * (self.aspect_ratio[1] - self.aspect_ratio[0])
        # The largest block of this ratio that fits the (square) grid, scaled to the area.
        if ratio < 1.0:
            h_max, w_max = float(self.grid), self.grid * ratio
        else:
            h_max, w_max = self.grid / ratio, float(self.grid)
        factor = math.sqrt(area / (h_max * w_max))
        height, width = round(factor * h_max), round(factor * w_max)
        if height * width < self.min_patches:
            factor = math.sqrt(self.min_patches / (h_max * w_max))
            height, width = math.ceil(factor * h_max), math.ceil(factor * w_max)
        height = min(max(height, 1), self.grid)
        width = min(max(width, 1), self.grid)
        top = int(torch.randint(self.grid - height + 1, (1,), generator=generator))
        left = int(torch.randint(self.grid - width + 1, (1,), generator=generator))
        return top, top + height, left, left + width

    def sample(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Return ``(context_mask, target)``, each ``(N,)`` bool; True = hidden / predicted."""
        blocks = []
        for _ in range(self.blocks):
            top, bottom, left, right = self.rectangle(generator)
            block = torch.zeros(self.grid, self.grid, dtype=torch.bool)
            block[top:bottom, left:right] = True
            blocks.append(block.flatten())
        context_mask = torch.stack(blocks).any(0)
        target = blocks[int(torch.randint(len(blocks), (1,), generator=generator))].clone()
        if int((~context_mask).sum()) < self.min_patches:
            keep = torch.randperm(self.patches, generator=generator)[: self.min_patches]
            context_mask[keep] = False
            target[keep] = True
        return context_mask, target

    def batch(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Return ``(context_masks, targets)``, each ``(size, N)`` bool, one draw per frame."""
        pairs = [self.sample(generator) for _ in range(size)]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
