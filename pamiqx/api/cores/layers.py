"""The pointwise parts of a core block: RMSNorm and the SwiGLU feed-forward."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pamiqx.api.cores.scan import widened


class RMSNorm(nn.Module):
    """Root-mean-square normalisation over the last dimension, with a learned scale.

    Attributes:
        eps: Added to the mean square before the square root.
        weight: ``(dim,)`` learned scale (ones at first).
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        """Build the norm.

        Args:
            dim: Width of the normalised dimension.
            eps: Added to the mean square before the square root.
        """
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` divided by its root mean square (computed in at least float32)."""
        wide = widened(x)
        normed = wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight).to(x.dtype)


class SwiGLU(nn.Module):
    """Feed-forward ``W_out (W x * silu(W_gate x))``.

    Attributes:
        hidden_dim: Width of the gated hidden layer.
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        """Build the feed-forward.

        Args:
            dim: Width of the input and output.
            hidden_dim: Width of the gated hidden layer.
        """
        super().__init__()
        self.hidden_dim = hidden_dim
        self.fc = nn.Linear(dim, hidden_dim)
        self.fc_gate = nn.Linear(dim, hidden_dim)
        self.fc_out = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the feed-forward to ``(..., dim)`` features."""
        out: Tensor = self.fc_out(self.fc(x) * F.silu(self.fc_gate(x)))
        return out
