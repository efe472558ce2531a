"""Input-gated recurrences (QLSTM, QGRU): gates read only the input, so windows are one scan.

A mixer maps ``(T, B, D)`` inputs and a flat ``(B, state_dim)`` state to
``(T, B, D)`` outputs and the state after the window; ``keep`` is
``1 - reset``, which multiplies the carried state of each step. The state is
computed in float32 whatever the autocast dtype, so long windows keep their
precision.
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor, nn

from pamiqx.api.cores.scan import linear_scan, widened


class Mixer(nn.Module, abc.ABC):
    """The time-mixing layer of a block, with a flat per-world state.

    Attributes:
        dim: Width of the input and output.
        state_dim: Width of the flat state.
    """

    dim: int
    state_dim: int

    @abc.abstractmethod
    def window(
        self, x: Tensor, state: Tensor, keep: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Mix a window.

        Args:
            x: ``(T, B, dim)`` inputs (already normalised).
            state: ``(B, state_dim)`` state before the window.
            keep: ``(T, B)`` 0 where a step starts an episode (its carried state is
                dropped), 1 elsewhere.

        Returns:
            ``(T, B, dim)`` outputs, the ``(B, state_dim)`` state after the window, and
            a ``(T, B, ...)`` surprisal (None for mixers that have none).
        """

    def step(self, x: Tensor, state: Tensor, keep: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Mix one step: ``(B, dim)`` inputs, ``(B,)`` keep; as :meth:`window` of length 1."""
        y, state, surprisal = self.window(x.unsqueeze(0), state, keep.unsqueeze(0))
        return y.squeeze(0), state, None if surprisal is None else surprisal.squeeze(0)


class GatedRecurrence(Mixer):
    """``h_t = a_t * keep_t * h_{t-1} + b_t`` with ``a``, ``b`` and the readout from the input."""

    def __init__(self, dim: int) -> None:
        """Build the layer.

        Args:
            dim: Width of the input, the state and the output.
        """
        super().__init__()
        self.dim = dim
        self.state_dim = dim

    @abc.abstractmethod
    def gates(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return the retention ``a`` and the input ``b`` of ``(..., dim)`` inputs."""

    @abc.abstractmethod
    def readout(self, h: Tensor, x: Tensor) -> Tensor:
        """Return the output of states ``h`` for inputs ``x``."""

    def window(
        self, x: Tensor, state: Tensor, keep: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Mix a window with the parallel scan."""
        y, h = self.window_states(x, state, keep)
        return y, h[-1], None

    def window_states(self, x: Tensor, state: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
        """Mix a window with the parallel scan; returns outputs and the ``(T, B, dim)`` states.

        The state after every step comes out of the scan anyway; models that branch
        from each step (a forward model's imagination) need them all.
        """
        a, b = self.gates(x)
        a = widened(a)
        a = a * keep.unsqueeze(-1).to(a.dtype)
        h = linear_scan(a, widened(b), widened(state))
        return self.readout(h, x).to(x.dtype), h

    def step(self, x: Tensor, state: Tensor, keep: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Mix one step with the recurrence itself."""
        a, b = self.gates(x)
        a = widened(a)
        h = torch.addcmul(widened(b), a * keep.unsqueeze(-1).to(a.dtype), widened(state))
        return self.readout(h, x).to(x.dtype), h, None


class QLSTMLayer(GatedRecurrence):
    """``h_t = σ(W_f x_t) h_{t-1} + tanh(W_i x_t) σ(W_g x_t)``, ``y_t = tanh(h_t) σ(W_o x_t)``."""

    def __init__(self, dim: int) -> None:
        """Build the layer (four ``dim x dim`` projections)."""
        super().__init__(dim)
        self.fc_forget = nn.Linear(dim, dim)
        self.fc_input = nn.Linear(dim, dim)
        self.fc_input_gate = nn.Linear(dim, dim)
        self.fc_output_gate = nn.Linear(dim, dim)

    def gates(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``σ(W_f x)`` and ``tanh(W_i x) σ(W_g x)``."""
        a = torch.sigmoid(self.fc_forget(x))
        b = torch.tanh(self.fc_input(x)) * torch.sigmoid(self.fc_input_gate(x))
        return a, b

    def readout(self, h: Tensor, x: Tensor) -> Tensor:
        """Return ``tanh(h) σ(W_o x)``."""
        return torch.tanh(h) * widened(torch.sigmoid(self.fc_output_gate(x)))


class QGRULayer(GatedRecurrence):
    """``h_t = (1 - r_t) h_{t-1} + r_t tanh(W_i x_t)``, ``y_t = W_out h_t``.

    As in the reference, ``r_t = σ(W_f x_t) * ramp`` with ``ramp`` rising from 0 to 1
    over the channels, so channels range from slow (long memory) to fast.
    """

    ramp: Tensor

    def __init__(self, dim: int) -> None:
        """Build the layer (three ``dim x dim`` projections)."""
        super().__init__(dim)
        self.fc_forget = nn.Linear(dim, dim)
        self.fc_input = nn.Linear(dim, dim)
        self.fc_out = nn.Linear(dim, dim)
        self.register_buffer("ramp", torch.linspace(0.0, 1.0, dim), persistent=False)

    def gates(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``1 - r`` and ``r tanh(W_i x)``."""
        remember = torch.sigmoid(self.fc_forget(x)) * self.ramp
        return 1.0 - remember, remember * torch.tanh(self.fc_input(x))

    def readout(self, h: Tensor, x: Tensor) -> Tensor:
        """Return ``W_out h``."""
        out: Tensor = self.fc_out(h.to(self.fc_out.weight.dtype))
        return out
