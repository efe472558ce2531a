"""Fixed 2-D sin-cos position embeddings (MAE / I-JEPA)."""

from __future__ import annotations

import torch
from torch import Tensor


def _sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """Return ``(L, dim)`` embeddings: sines then cosines of geometric frequencies."""
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(dim: int, grid: int) -> Tensor:
    """Return ``(grid * grid, dim)`` float32 embeddings of a square patch grid, row-major.

    The first half of the channels encodes a patch's column, the second half its
    row, as in the reference (and MAE, whose meshgrid puts the column first).

    Args:
        dim: Embedding width, a multiple of 4.
        grid: Patches per side.
    """
    if dim % 4:
        raise ValueError(f"sin-cos embedding width must be a multiple of 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    column = _sincos_1d(dim // 2, cols.reshape(-1))
    row = _sincos_1d(dim // 2, rows.reshape(-1))
    return torch.cat([column, row], dim=1).float()
