"""``ttt``'s small stand-in core and the fatigue that shapes its reward.

* :class:`TTTCore` (``core = "fast-weights"``): one ``d x d`` fast-weight matrix
  that takes one gradient step per input. It is the small stand-in for the
  reference's TTT layer (``core = "ttt"``: multi-head MLP fast weights with a
  learned, input-gated inner learning rate and decay, updated chunkwise, from
  :class:`pamiqx.api.RecurrentStack`).
* :func:`fatigue_step`: ``m_t = mean(s_t)``, the long average ``M_t`` of ``m_t``
  and the fatigue ``f_t``, as the reference's ttt agent computes them
  (src/exp/agents/curiosity/ttt.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TTTCore(nn.Module):
    """The small stand-in: fast weights ``W = W_0 + ΔW`` updated by one step per input.

    The recurrent state is ``ΔW`` (zero at a start, so a fresh state is the
    learned ``W_0``). Keys, values and queries are learned projections of the
    input (keys unit-normed); the inner loss is ``0.5 ||W k_t - v_t||^2`` and its
    per-dimension value before the step is the surprisal.

    Attributes:
        dim: ``d``, the size of keys, values and queries.
    """

    def __init__(self, input_dim: int, dim: int, output_dim: int, inner_lr: float) -> None:
        """Create the projections, the initial fast weights and the output layer."""
        super().__init__()
        self.dim = dim
        self.inner_lr = inner_lr
        self.key = nn.Linear(input_dim, dim)
        self.value = nn.Linear(input_dim, dim)
        self.query = nn.Linear(input_dim, dim)
        self.initial_weights = nn.Parameter(torch.zeros(dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim + input_dim, output_dim)

    def forward(self, x: Tensor, delta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Score, update and read the fast weights for one step.

        Args:
            x: ``(B, input_dim)`` input.
            delta: ``(B, d * d)`` fast-weight offset before the step.

        Returns:
            ``(features (B, output_dim), new delta (B, d * d), surprisal s (B, d))``.
        """
        batch = x.shape[0]
        weights = self.initial_weights + delta.view(batch, self.dim, self.dim)
        key = F.normalize(self.key(x), dim=-1)
        error = torch.bmm(weights, key.unsqueeze(-1)).squeeze(-1) - self.value(x)
        surprisal = error.pow(2)
        # One gradient step on 0.5 ||W k - v||^2; with |k| = 1 a step size in (0, 1] is stable.
        step = self.inner_lr * error.unsqueeze(-1) * key.unsqueeze(-2)
        new_delta = delta.view(batch, self.dim, self.dim) - step
        read = torch.bmm(self.initial_weights + new_delta, self.query(x).unsqueeze(-1))
        features = F.relu(self.out(torch.cat([self.norm(read.squeeze(-1)), x], dim=-1)))
        return features, new_delta.reshape(batch, -1), surprisal


def fatigue_step(
    surprisal: Tensor,
    fatigue: Tensor,
    long_mean: Tensor,
    fatigue_decay: float,
    long_decay: float,
) -> tuple[Tensor, Tensor]:
    """Advance the fatigue by one step.

    ``m_t = mean(s_t)``; ``M_t = long_decay M_{t-1} + (1 - long_decay) m_t``
    (``M`` starts at the first ``m_t``: a state whose ``M`` is 0 has none yet);
    ``f_t = fatigue_decay f_{t-1} + (1 - fatigue_decay) m_t / M_t``.

    Args:
        surprisal: ``(B, S)`` surprisal vector ``s_t`` (detached).
        fatigue: ``(B, 1)`` ``f_{t-1}``.
        long_mean: ``(B, 1)`` ``M_{t-1}`` (0: none yet).
        fatigue_decay: Decay of ``f`` (0.99 in the reference).
        long_decay: Decay of ``M`` (0.9999 in the reference).

    Returns:
        ``(f_t, M_t)``, each ``(B, 1)``.
    """
    mean = surprisal.mean(dim=-1, keepdim=True)
    new_long = torch.where(long_mean > 0, long_decay * long_mean + (1 - long_decay) * mean, mean)
    ratio = mean / new_long.clamp_min(1e-8)
    return fatigue_decay * fatigue + (1 - fatigue_decay) * ratio, new_long
