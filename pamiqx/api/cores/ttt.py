"""Test-time training (TTT): per-head MLP fast weights trained by gradient steps as data arrives.

Each head holds a two-layer MLP ``f(k) = W2 silu(W1 k)`` that learns to map keys
to values with an inner loss ``0.5 * mean((f(k_t) - v_t)^2)`` (the *surprisal*,
per head and step), and answers queries with the weights after the update.
Learning rate and decay of each fast layer are learned and gated by the input:
``lr_t = base * σ(W_lr x_t)``, ``decay_t = 1 - base * σ(W_decay x_t)``, with the
per-head ``base`` initialised log-spaced over a range (as in the reference).

Updates are chunkwise (mini-batch TTT, as in the reference): within a chunk
every step's gradient is taken at the weights of the chunk's start (the
*anchor*), which makes the chunk one batch of matrix products. Where this
differs from the reference, on purpose:

* Fast weights are ``W0 + Δ`` with learned ``W0``; the state holds ``Δ``, which
  decays towards 0 (so the weights decay towards ``W0``). A zero state is
  therefore the learned start, episode starts reset to it, and decay never
  drives the MLP to the all-zero weights, where its gradients vanish.
* Chunks are counted in absolute steps: the state stores the step's position
  in its chunk and, mid-chunk, the anchor. A window started from any stored
  state, and any single step, then compute exactly what stepping computes.
  With ``chunk = 1`` the anchor is the state itself and is not stored.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pamiqx.api.cores.gated import Mixer
from pamiqx.api.cores.scan import widened


def _silu_grad(z: Tensor) -> Tensor:
    """Derivative of silu at ``z``."""
    s = torch.sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def _decay_matrix(log_decay: Tensor, segment: Tensor) -> Tensor:
    """Return ``P[s, t]``: the decay applied between steps ``s`` and ``t`` (0 across resets).

    Args:
        log_decay: ``(B, n, L)`` log of each step's decay (<= 0).
        segment: ``(B, L)`` episode index within the chunk (resets so far).

    Returns:
        ``(B, n, L, L)`` ``exp(sum_{s < r <= t} log_decay_r)`` for ``s <= t`` in the same
        episode, else 0. Exponents are differences of a cumulative sum, never positive.
    """
    cum = torch.cumsum(log_decay, dim=-1)
    diff = cum.unsqueeze(-2) - cum.unsqueeze(-1)  # [s, t] = cum_t - cum_s
    steps = log_decay.shape[-1]
    causal = torch.ones(steps, steps, dtype=torch.bool, device=log_decay.device).triu()
    same = segment.unsqueeze(-1) == segment.unsqueeze(-2)
    mask = (causal & same).unsqueeze(1)
    return torch.exp(diff.masked_fill(~mask, -math.inf))


class TTTLayer(Mixer):
    """Multi-head MLP fast weights with input-gated inner learning rate and decay.

    The flat state is ``[position in chunk (1), anchor Δ (if chunk > 1), Δ]``, each
    ``Δ`` being ``W1`` (heads, inner, head_dim) then ``W2`` (heads, head_dim, inner).

    Attributes:
        heads: Number of heads.
        head_dim: Width of a head's keys, values and queries.
        inner: Hidden width of a head's fast MLP.
        chunk: Steps per chunkwise update.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        inner_ratio: float,
        chunk: int,
        base_lr: tuple[float, float],
    ) -> None:
        """Build the layer.

        Args:
            dim: Width of the input and output; divisible by ``heads``.
            heads: Number of heads.
            inner_ratio: Hidden width of a head's fast MLP over its ``head_dim``.
            chunk: Steps per chunkwise update.
            base_lr: Range (low, high) of the heads' initial base learning rates, in (0, 1].

        Raises:
            ValueError: If the sizes do not fit.
        """
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} must be divisible by heads {heads}")
        if chunk < 1 or inner_ratio <= 0:
            raise ValueError("chunk and inner_ratio must be positive")
        low, high = base_lr
        if not 0 < low <= high <= 1:
            raise ValueError(f"base_lr must satisfy 0 < low <= high <= 1, got {base_lr}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.inner = max(1, round(self.head_dim * inner_ratio))
        self.chunk = chunk
        self.weights_dim = 2 * heads * self.inner * self.head_dim
        self.state_dim = 1 + self.weights_dim * (2 if chunk > 1 else 1)
        self.fc_query = nn.Linear(dim, dim)
        self.fc_key = nn.Linear(dim, dim)
        self.fc_value = nn.Linear(dim, dim)
        self.fc_out = nn.Linear(dim, dim)
        self.fc_lr = nn.Linear(dim, 2 * heads)
        self.fc_decay = nn.Linear(dim, 2 * heads)
        log_base = torch.linspace(math.log(low), math.log(high), heads)
        self.log_base_lr = nn.Parameter(log_base.repeat(2, 1))  # (fast layer, head)
        # The learned start of the fast weights (the state holds the change from it).
        w1 = torch.randn(heads, self.inner, self.head_dim) / self.head_dim**0.5
        w2 = torch.randn(heads, self.head_dim, self.inner) / self.inner**0.5
        self.w1_init, self.w2_init = nn.Parameter(w1), nn.Parameter(w2)

    # --- state layout ---------------------------------------------------------------------

    def _unpack(self, weights: Tensor) -> tuple[Tensor, Tensor]:
        """Split ``(B, weights_dim)`` into ``Δ1 (B, n, e, d)`` and ``Δ2 (B, n, d, e)``."""
        batch, n, e, d = weights.shape[0], self.heads, self.inner, self.head_dim
        w1, w2 = torch.split(weights, n * e * d, dim=-1)
        return w1.reshape(batch, n, e, d), w2.reshape(batch, n, d, e)

    def _split_state(self, state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return position in chunk ``(B,)``, anchor and running ``Δ`` (flat)."""
        position = state[:, 0]
        run = state[:, 1 + (self.weights_dim if self.chunk > 1 else 0) :]
        anchor = state[:, 1 : 1 + self.weights_dim] if self.chunk > 1 else run
        return position, anchor, run

    def _join_state(self, position: Tensor, anchor: Tensor, run: Tensor) -> Tensor:
        parts = [position.unsqueeze(-1)] + ([anchor] if self.chunk > 1 else []) + [run]
        return torch.cat(parts, dim=-1)

    # --- mixing ---------------------------------------------------------------------------

    def window(
        self, x: Tensor, state: Tensor, keep: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Mix a window chunk by chunk; the surprisal is ``(T, B, heads)``."""
        steps, batch, _ = x.shape
        out_dtype = x.dtype
        with torch.autocast(x.device.type, enabled=False):
            q, k, v, lr, log_decay = self._projections(widened(x))
            keep = keep.to(q.dtype)
            state = state.to(q.dtype)
            position, anchor, run = self._split_state(state)
            # Worlds are grouped by their position in the chunk (usually one group).
            ys = q.new_zeros(batch, steps, self.dim)
            surprisal = q.new_zeros(batch, self.heads, steps)
            new_state = torch.empty_like(state)
            for offset in torch.unique(position).tolist():
                rows = (position == offset).nonzero().squeeze(-1)
                a, r, start = anchor[rows], run[rows], int(offset)
                t = 0
                while t < steps:
                    length = min(steps - t, self.chunk - start)
                    part = slice(t, t + length)
                    y, s, a, r = self._segment(
                        q[rows, :, part],
                        k[rows, :, part],
                        v[rows, :, part],
                        lr[rows, :, :, part],
                        log_decay[rows, :, :, part],
                        keep[part, rows].T,
                        a,
                        r,
                        closes_chunk=start + length == self.chunk,
                    )
                    ys[rows, part] = y
                    surprisal[rows, :, part] = s
                    start = (start + length) % self.chunk
                    t += length
                new_position = torch.full_like(position[rows], float(start))
                new_state[rows] = self._join_state(new_position, a, r)
            out = self.fc_out(ys.transpose(0, 1)).to(out_dtype)
        return out, new_state, surprisal.permute(2, 0, 1)

    def _projections(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Return q, k, v ``(B, n, T, d)``, lr and log decay ``(B, 2, n, T)`` of ``(T, B, D)``."""
        steps, batch, _ = x.shape

        def heads(t: Tensor) -> Tensor:
            return t.reshape(steps, batch, self.heads, self.head_dim).permute(1, 2, 0, 3)

        q, k, v = heads(self.fc_query(x)), heads(self.fc_key(x)), heads(self.fc_value(x))
        # A base above 1 would make the decay negative; the decay uses it capped at 1.
        base = torch.exp(self.log_base_lr).unsqueeze(-1)  # (2, n, 1)

        def gated(fc: nn.Linear) -> Tensor:
            return torch.sigmoid(fc(x)).reshape(steps, batch, 2, self.heads).permute(1, 2, 3, 0)

        lr = base * gated(self.fc_lr)
        log_decay = torch.log1p(-base.clamp(max=1.0) * gated(self.fc_decay))
        return q, k, v, lr, log_decay

    def _segment(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        lr: Tensor,
        log_decay: Tensor,
        keep: Tensor,
        anchor: Tensor,
        run: Tensor,
        closes_chunk: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Run steps that share one anchor (the rest of a chunk, or a whole one).

        Args:
            q: ``(B, n, L, d)`` queries.
            k: ``(B, n, L, d)`` keys.
            v: ``(B, n, L, d)`` values.
            lr: ``(B, 2, n, L)`` inner learning rates of the two fast layers.
            log_decay: ``(B, 2, n, L)`` log decays of the two fast layers.
            keep: ``(B, L)`` 0 at episode starts.
            anchor: ``(B, weights_dim)`` ``Δ`` at which gradients are taken.
            run: ``(B, weights_dim)`` ``Δ`` before the first step.
            closes_chunk: Whether the last step ends a chunk (the anchor moves).

        Returns:
            ``(B, L, dim)`` head outputs (before ``fc_out``), ``(B, n, L)`` surprisal,
            and the anchor and ``Δ`` after the segment.
        """
        a1, a2 = self._unpack(anchor)
        r1, r2 = self._unpack(run)
        w1, w2 = self.w1_init.to(q.dtype), self.w2_init.to(q.dtype)
        alive = torch.cumprod(keep, dim=-1)  # 1 until the first reset in the segment
        segment = torch.cumsum(1.0 - keep, dim=-1)
        alive_h = alive[:, None, :, None]

        # The inner loss and its gradients at the anchor (Δ is 0 after a reset).
        z1 = torch.einsum("ned,bnld->bnle", w1, k) + alive_h * torch.einsum(
            "bned,bnld->bnle", a1, k
        )
        x2 = F.silu(z1)
        z2 = torch.einsum("nde,bnle->bnld", w2, x2) + alive_h * torch.einsum(
            "bnde,bnle->bnld", a2, x2
        )
        error = z2 - v
        surprisal = 0.5 * error.pow(2).mean(-1)
        g2 = error / self.head_dim
        gx2 = torch.einsum("nde,bnld->bnle", w2, g2) + alive_h * torch.einsum(
            "bnde,bnld->bnle", a2, g2
        )
        g1 = _silu_grad(z1) * gx2

        # Decays between steps, and from the carried Δ to each step (0 after a reset).
        p1 = _decay_matrix(log_decay[:, 0], segment)
        p2 = _decay_matrix(log_decay[:, 1], segment)
        carried = torch.exp(torch.cumsum(log_decay, dim=-1)) * alive[:, None, None, :]
        c1, c2 = carried[:, 0].unsqueeze(-1), carried[:, 1].unsqueeze(-1)
        lr1, lr2 = lr[:, 0].unsqueeze(-1), lr[:, 1].unsqueeze(-1)

        # Queries through the weights after each step's update (dual form).
        kq = torch.einsum("bnsd,bntd->bnst", k, q)
        z1q = (
            torch.einsum("ned,bnld->bnle", w1, q)
            + c1 * torch.einsum("bned,bnld->bnle", r1, q)
            - torch.einsum("bnst,bnse->bnte", lr1 * p1 * kq, g1)
        )
        x2q = F.silu(z1q)
        xx = torch.einsum("bnse,bnte->bnst", x2, x2q)
        z2q = (
            torch.einsum("nde,bnle->bnld", w2, x2q)
            + c2 * torch.einsum("bnde,bnle->bnld", r2, x2q)
            - torch.einsum("bnst,bnsd->bntd", lr2 * p2 * xx, g2)
        )

        # Δ after the last step.
        last1 = lr[:, 0] * p1[..., -1]
        last2 = lr[:, 1] * p2[..., -1]
        new_r1 = c1[:, :, -1:, :] * r1 - torch.einsum("bns,bnse,bnsd->bned", last1, g1, k)
        new_r2 = c2[:, :, -1:, :] * r2 - torch.einsum("bns,bnsd,bnse->bnde", last2, g2, x2)
        new_run = torch.cat([new_r1.flatten(1), new_r2.flatten(1)], dim=-1)
        new_anchor = new_run if closes_chunk else anchor * alive[:, -1:]
        batch, _, steps, _ = q.shape
        y = z2q.permute(0, 2, 1, 3).reshape(batch, steps, self.dim)
        return y, surprisal, new_anchor, new_run
