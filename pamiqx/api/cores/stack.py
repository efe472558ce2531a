"""The ``qlstm``, ``qgru`` and ``ttt`` cores: stacks of pre-norm residual blocks around a mixer.

A block is ``x + drop(mixer(norm(x)))`` then ``x + drop(swiglu(norm(x)))``. The
whole stack's state is flat, ``(B, state_dim)``: each block's state one after
the other (``depth x width`` for QLSTM and QGRU). Dropout is applied only when
a caller passes ``regularize=True``; module ``train()``/``eval()`` modes do not
switch it, so the forward pass PPO computes its ratios with is the acting one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pamiqx.api.cores.gated import GatedRecurrence, Mixer, QGRULayer, QLSTMLayer
from pamiqx.api.cores.layers import RMSNorm, SwiGLU
from pamiqx.api.cores.sizes import SMALL_SIZES, CoreKind, CoreSizes
from pamiqx.api.cores.ttt import TTTLayer


class CoreBlock(nn.Module):
    """Pre-RMSNorm mixer and SwiGLU feed-forward, each with a residual.

    Attributes:
        mixer: The time-mixing layer.
        dropout: Dropout rate of ``regularize=True`` calls.
    """

    def __init__(self, mixer: Mixer, ff_ratio: float, dropout: float) -> None:
        """Build the block.

        Args:
            mixer: The time-mixing layer (its ``dim`` is the block's width).
            ff_ratio: Hidden width of the feed-forward over the width.
            dropout: Dropout rate of ``regularize=True`` calls.
        """
        super().__init__()
        self.mixer = mixer
        self.dropout = dropout
        self.norm_mixer = RMSNorm(mixer.dim)
        self.norm_ff = RMSNorm(mixer.dim)
        self.ff = SwiGLU(mixer.dim, max(1, round(mixer.dim * ff_ratio)))

    def residuals(self, x: Tensor, mixed: Tensor, regularize: bool) -> Tensor:
        """Add the mixed output and then the feed-forward to ``x`` (dropout if ``regularize``)."""
        x = x + F.dropout(mixed, self.dropout, training=regularize)
        return x + F.dropout(self.ff(self.norm_ff(x)), self.dropout, training=regularize)

    def window(
        self, x: Tensor, state: Tensor, keep: Tensor, regularize: bool
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Run a ``(T, B, width)`` window; returns outputs, state and surprisal."""
        mixed, state, surprisal = self.mixer.window(self.norm_mixer(x), state, keep)
        return self.residuals(x, mixed, regularize), state, surprisal

    def step(
        self, x: Tensor, state: Tensor, keep: Tensor, regularize: bool
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Run one ``(B, width)`` step; returns outputs, state and surprisal."""
        mixed, state, surprisal = self.mixer.step(self.norm_mixer(x), state, keep)
        return self.residuals(x, mixed, regularize), state, surprisal


def _keep(resets: Tensor | None, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """Return ``1 - resets`` (ones when there are none) in ``like``'s dtype."""
    if resets is None:
        return torch.ones(shape, dtype=like.dtype, device=like.device)
    return 1.0 - resets.to(like.dtype)


class RecurrentStack(nn.Module):
    """Input projection, ``depth`` core blocks and a final RMSNorm.

    Attributes:
        kind: ``qlstm``, ``qgru`` or ``ttt``.
        sizes: The sizes it was built with.
        input_dim: Width of the inputs.
        width: Width of the outputs.
        state_dim: Width of the flat state.
        state_widths: Each block's share of the state, in order.
        blocks: The blocks.
    """

    def __init__(self, kind: CoreKind, input_dim: int, sizes: CoreSizes = SMALL_SIZES) -> None:
        """Build the stack.

        Args:
            kind: ``qlstm``, ``qgru`` or ``ttt``.
            input_dim: Width of the inputs (projected to ``sizes.width`` if different).
            sizes: Depth, width and the other sizes.

        Raises:
            ValueError: If a size is out of range or ``kind`` is unknown.
        """
        super().__init__()
        if min(sizes.depth, sizes.width, input_dim) < 1 or sizes.ff_ratio <= 0:
            raise ValueError(f"depth, width, input_dim and ff_ratio must be positive: {sizes}")
        if not 0.0 <= sizes.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {sizes.dropout}")
        self.kind = kind
        self.sizes = sizes
        self.input_dim = input_dim
        self.width = sizes.width
        self.input = (
            nn.Linear(input_dim, sizes.width) if input_dim != sizes.width else nn.Identity()
        )
        self.blocks = nn.ModuleList(
            CoreBlock(_mixer(kind, sizes), sizes.ff_ratio, sizes.dropout)
            for _ in range(sizes.depth)
        )
        self.norm = RMSNorm(sizes.width)
        self.state_widths = [block.mixer.state_dim for block in self._core_blocks()]
        self.state_dim = sum(self.state_widths)

    def _core_blocks(self) -> list[CoreBlock]:
        return [block for block in self.blocks if isinstance(block, CoreBlock)]

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> Tensor:
        """Return the state at the start of a run, ``(batch, state_dim)`` zeros."""
        return torch.zeros(batch, self.state_dim, device=device)

    def forward_window_with_surprisal(
        self,
        x: Tensor,
        state: Tensor,
        resets: Tensor | None = None,
        regularize: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Run a window of consecutive steps.

        Args:
            x: ``(T, B, input_dim)`` inputs.
            state: ``(B, state_dim)`` state before the first step.
            resets: Optional ``(T, B)`` episode starts; a reset at ``t`` drops the state
                carried into step ``t``.
            regularize: Apply dropout (a training option of models that want it;
                the policy never passes it).

        Returns:
            ``(T, B, width)`` outputs, the state after the window and, for ``ttt``, the
            ``(T, B, depth, heads)`` inner loss of each block and head before its update
            (None for the other kinds).
        """
        return self._run(x, state, _keep(resets, x.shape[:2], state), regularize, window=True)

    def step_with_surprisal(
        self,
        x: Tensor,
        state: Tensor,
        reset: Tensor | None = None,
        regularize: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Run one step: ``(B, input_dim)`` inputs, optional ``(B,)`` resets.

        Returns:
            ``(B, width)`` outputs, the state after the step and, for ``ttt``, the
            ``(B, depth, heads)`` surprisal (None for the other kinds).
        """
        return self._run(x, state, _keep(reset, x.shape[:1], state), regularize, window=False)

    def _run(
        self, x: Tensor, state: Tensor, keep: Tensor, regularize: bool, window: bool
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        h: Tensor = self.input(x)
        parts = torch.split(state, self.state_widths, -1)
        states, surprisals = [], []
        for block, part in zip(self._core_blocks(), parts, strict=True):
            run = block.window if window else block.step
            h, new, surprisal = run(h, part, keep, regularize)
            states.append(new.to(state.dtype))
            surprisals.append(surprisal)
        # The blocks' surprisals stack after the time and batch dimensions.
        return self.norm(h), torch.cat(states, -1), _stacked(surprisals, dim=keep.dim())

    def forward_window(
        self,
        x: Tensor,
        state: Tensor,
        resets: Tensor | None = None,
        regularize: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Run a window; returns ``(T, B, width)`` outputs and the state after it."""
        y, state, _ = self.forward_window_with_surprisal(x, state, resets, regularize)
        return y, state

    def step(
        self,
        x: Tensor,
        state: Tensor,
        reset: Tensor | None = None,
        regularize: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Run one step; returns ``(B, width)`` outputs and the state after it."""
        y, state, _ = self.step_with_surprisal(x, state, reset, regularize)
        return y, state

    def forward_window_states(
        self, x: Tensor, state: Tensor, resets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run a window and return the flat state after *every* step (``qlstm``, ``qgru``).

        The parallel scan computes each step's state anyway; a model that branches
        from every step of a window (a forward model's multi-step imagination) takes
        them all from one call instead of stepping through the window.

        Args:
            x: ``(T, B, input_dim)`` inputs.
            state: ``(B, state_dim)`` state before the first step.
            resets: Optional ``(T, B)`` episode starts, as in :meth:`forward_window`.

        Returns:
            ``(T, B, width)`` outputs and ``(T, B, state_dim)`` states, ``[t]`` being the
            state after step ``t`` (what :meth:`step` would return there).

        Raises:
            ValueError: For ``ttt``, whose per-step state (the fast weights) is too large
                to keep for every step.
        """
        if self.kind == "ttt":
            raise ValueError("forward_window_states needs a qlstm or qgru stack, not ttt")
        keep = _keep(resets, x.shape[:2], state)
        h: Tensor = self.input(x)
        parts = torch.split(state, self.state_widths, -1)
        states = []
        for block, part in zip(self._core_blocks(), parts, strict=True):
            assert isinstance(block.mixer, GatedRecurrence)
            mixed, every = block.mixer.window_states(block.norm_mixer(h), part, keep)
            h = block.residuals(h, mixed, regularize=False)
            states.append(every.to(state.dtype))
        return self.norm(h), torch.cat(states, -1)

    def forward(
        self, x: Tensor, state: Tensor, resets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Same as :meth:`forward_window` (without dropout)."""
        return self.forward_window(x, state, resets)


def _stacked(parts: list[Tensor | None], dim: int) -> Tensor | None:
    present = [p for p in parts if p is not None]
    return torch.stack(present, dim=dim) if present else None


def _mixer(kind: CoreKind, sizes: CoreSizes) -> Mixer:
    if kind == "qlstm":
        return QLSTMLayer(sizes.width)
    if kind == "qgru":
        return QGRULayer(sizes.width)
    if kind == "ttt":
        return TTTLayer(sizes.width, sizes.heads, sizes.inner_ratio, sizes.chunk, sizes.base_lr)
    raise ValueError(f"unknown core kind {kind!r}; expected qlstm, qgru or ttt")
