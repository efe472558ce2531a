"""The recurrent cores the unified network can run on, behind one interface.

A core maps ``(B, input_dim)`` inputs and a flat ``(B, state_dim)`` state to
``(B, width)`` features, the new state and, for the test-time-training cores, a
``(B, surprisal_dim)`` surprisal vector. ``reset`` marks episode starts: the
core drops the state carried into that step. :meth:`UnifiedCore.window` runs a
``(T, B, input_dim)`` window; the reference stacks do it in one parallel call
(:meth:`pamiqx.api.RecurrentStack.forward_window`), the others step through it.

* :class:`GRUCore`: a GRU cell (``unified``'s small default).
* :class:`StackCore`: the reference's ``qgru``, ``qlstm`` or ``ttt`` stack.
* :class:`FastWeightsCore`: the small stand-in TTT layer (:class:`TTTCore`).
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor, nn

from pamiqx.api import CoreSizes, RecurrentStack
from pamiqx_fd_curiosity.ttt_core import TTTCore


def _keep(reset: Tensor | None, state: Tensor) -> Tensor:
    """Return ``(B, 1)`` ``1 - reset`` in the state's dtype (ones when there is none)."""
    if reset is None:
        return torch.ones(state.shape[0], 1, dtype=state.dtype, device=state.device)
    return 1.0 - reset.to(state.dtype).unsqueeze(-1)


class UnifiedCore(nn.Module, abc.ABC):
    """A recurrent core with a flat state.

    Attributes:
        width: Width of the features.
        state_dim: Width of the flat state.
        surprisal_dim: Width of the surprisal vector (0: the core has none).
        scans: Whether :meth:`window` computes the window in one parallel call.
    """

    width: int
    state_dim: int
    surprisal_dim: int = 0
    scans: bool = False

    @abc.abstractmethod
    def step(
        self, x: Tensor, state: Tensor, reset: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One step: ``(B, width)`` features, the new state and the surprisal (or None)."""

    def window(
        self, x: Tensor, state: Tensor, resets: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """A ``(T, B, input_dim)`` window, step by step.

        Returns:
            ``(T, B, width)`` features, the state after the window and the
            ``(T, B, surprisal_dim)`` surprisal (or None).
        """
        features, surprisals = [], []
        for t in range(x.shape[0]):
            y, state, surprisal = self.step(x[t], state, None if resets is None else resets[t])
            features.append(y)
            surprisals.append(surprisal)
        stacked = None if surprisals[0] is None else torch.stack(surprisals)  # type: ignore[arg-type]
        return torch.stack(features), state, stacked


class GRUCore(UnifiedCore):
    """A GRU cell whose state is its output."""

    def __init__(self, input_dim: int, width: int) -> None:
        """Create the cell."""
        super().__init__()
        self.width = self.state_dim = width
        self.cell = nn.GRUCell(input_dim, width)

    def step(
        self, x: Tensor, state: Tensor, reset: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One GRU step from the state (zeroed at an episode start)."""
        h: Tensor = self.cell(x, state * _keep(reset, state))
        return h, h, None


class StackCore(UnifiedCore):
    """A reference stack (:class:`pamiqx.api.RecurrentStack`); dropout never applies.

    For ``ttt`` the surprisal is each block's and head's inner loss before its
    update, ``(depth, heads)`` flattened block-major.
    """

    def __init__(self, kind: str, input_dim: int, sizes: CoreSizes) -> None:
        """Create the stack.

        Args:
            kind: ``qgru``, ``qlstm`` or ``ttt``.
            input_dim: Width of the inputs.
            sizes: The stack's sizes.
        """
        super().__init__()
        self.stack = RecurrentStack(kind, input_dim, sizes)  # type: ignore[arg-type]
        self.width = self.stack.width
        self.state_dim = self.stack.state_dim
        self.surprisal_dim = sizes.depth * sizes.heads if kind == "ttt" else 0
        self.scans = True

    def step(
        self, x: Tensor, state: Tensor, reset: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One step of the recurrence."""
        y, new, surprisal = self.stack.step_with_surprisal(x, state, reset)
        return y, new, None if surprisal is None else surprisal.flatten(-2)

    def window(
        self, x: Tensor, state: Tensor, resets: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """The whole window in one call (the parallel scan, or chunkwise TTT updates)."""
        y, new, surprisal = self.stack.forward_window_with_surprisal(x, state, resets)
        return y, new, None if surprisal is None else surprisal.flatten(-2)


class FastWeightsCore(UnifiedCore):
    """The small stand-in TTT layer: one ``d x d`` fast-weight matrix (:class:`TTTCore`)."""

    def __init__(self, input_dim: int, dim: int, width: int, inner_lr: float) -> None:
        """Create the layer.

        Args:
            input_dim: Width of the inputs.
            dim: ``d``, the size of keys, values and queries (and of the surprisal).
            width: Width of the features.
            inner_lr: Step size of the fast weights' per-step gradient step.
        """
        super().__init__()
        self.layer = TTTCore(input_dim, dim, width, inner_lr)
        self.width = width
        self.state_dim = dim * dim
        self.surprisal_dim = dim

    def step(
        self, x: Tensor, state: Tensor, reset: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Score, update and read the fast weights (back to the learned start at a reset)."""
        features, new, surprisal = self.layer(x, state * _keep(reset, state))
        return features, new, surprisal
