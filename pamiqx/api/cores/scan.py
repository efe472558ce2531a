"""The parallel scan of the gated linear recurrence ``h_t = a_t * h_{t-1} + b_t``.

The window is reduced by odd-even pairing (the pair ``(a, b)`` composes
associatively), which takes ``log2(T)`` levels and ``O(T)`` work; nothing is
divided by products of gates, so long windows of small ``a`` stay finite. The
backward pass is the same scan run backwards in time, so autograd keeps only
``a`` and the result instead of every level's temporaries.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def widened(x: Tensor) -> Tensor:
    """Return ``x`` in float32, or as it is when it is already float32 or float64."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _scan_from_zero(a: Tensor, b: Tensor) -> Tensor:
    """Return ``h`` of ``h_t = a_t h_{t-1} + b_t`` along dim 0, starting from ``h_{-1} = 0``."""
    steps = a.shape[0]
    if steps == 1:
        return b
    pairs = steps // 2
    a_even, a_odd = a[0 : 2 * pairs : 2], a[1 : 2 * pairs : 2]
    b_even, b_odd = b[0 : 2 * pairs : 2], b[1 : 2 * pairs : 2]
    # Composing steps 2i and 2i+1 halves the window; the recursion yields every odd h.
    h_odd = _scan_from_zero(a_odd * a_even, torch.addcmul(b_odd, a_odd, b_even))
    h = torch.empty_like(b)
    h[1 : 2 * pairs : 2] = h_odd
    h[0] = b[0]
    # Each even h (after the first) is one step from the odd h before it.
    h[2::2] = torch.addcmul(b[2::2], a[2::2], h_odd[: (steps - 1) // 2])
    return h


class _LinearScan(torch.autograd.Function):
    """``h_t = a_t h_{t-1} + b_t`` from zero, with the backward pass as a reverse scan."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor) -> Tensor:
        h = _scan_from_zero(a, b)
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor, Tensor]:
        a, h = ctx.saved_tensors
        # dL/db_t = g_t + a_{t+1} dL/db_{t+1}: the same recurrence, backwards in time.
        a_next = torch.cat([a[1:], torch.zeros_like(a[:1])])
        grad_b = _scan_from_zero(a_next.flip(0), grad_h.flip(0)).flip(0)
        h_prev = torch.cat([torch.zeros_like(h[:1]), h[:-1]])
        return grad_b * h_prev, grad_b


def linear_scan(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """Compute ``h_t = a_t * h_{t-1} + b_t`` for a whole window at once.

    Args:
        a: ``(T, ...)`` multiplicative gates (a reset at ``t`` is ``a_t = 0``).
        b: ``(T, ...)`` inputs, the same shape as ``a``.
        h0: ``(...)`` state before the window; zeros when None.

    Returns:
        ``(T, ...)`` every state ``h_0 .. h_{T-1}`` (``h[-1]`` is the state after the window).

    Raises:
        ValueError: If the shapes differ or the window is empty.
    """
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if a.shape[0] == 0:
        raise ValueError("the window must hold at least one step")
    if h0 is not None:
        # The carried state enters as part of the first input.
        first = torch.addcmul(b[:1], a[:1], h0.unsqueeze(0))
        b = torch.cat([first, b[1:]])
    result: Tensor = _LinearScan.apply(a, b)
    return result
