"""The GRU recurrent core of the built-in actor-critic, with resets at episode starts."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RecurrentCore(nn.Module):
    """GRU recurrent core whose state can be reset at episode starts.

    Attributes:
        input_dim: Size of the input features.
        hidden_dim: Size of the hidden state (and of the output).
    """

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        """Build the core.

        Args:
            input_dim: Size of the input features.
            hidden_dim: Size of the hidden state.
        """
        super().__init__()
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.cell = nn.GRUCell(input_dim, hidden_dim)

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> Tensor:
        """Return a zero hidden state.

        Args:
            batch: Batch size.
            device: Device of the state.

        Returns:
            ``(batch, hidden_dim)`` zeros.
        """
        return torch.zeros(batch, self.hidden_dim, device=device)

    def forward(self, x: Tensor, h: Tensor, reset: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Advance the core by one step.

        Args:
            x: ``(B, input_dim)`` input features.
            h: ``(B, hidden_dim)`` hidden state before the step.
            reset: Optional ``(B,)`` bool/float mask; where true/1 the state is zeroed
                before the step (the step starts a new episode).

        Returns:
            ``(out, h_next)``, both ``(B, hidden_dim)`` (the GRU output is its state).
        """
        if reset is not None:
            h = h * (1.0 - reset.to(h.dtype)).unsqueeze(-1)
        h_next: Tensor = self.cell(x, h)
        return h_next, h_next

    def forward_sequence(
        self, x: Tensor, h0: Tensor, resets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run the core over a sequence, exactly as repeated :meth:`forward` calls would.

        Args:
            x: ``(T, B, input_dim)`` input features.
            h0: ``(B, hidden_dim)`` hidden state before the first step.
            resets: Optional ``(T, B)`` mask; ``resets[t]`` is applied before step ``t``.

        Returns:
            ``(outs, h_T)`` with ``outs`` of shape ``(T, B, hidden_dim)`` and the final
            ``(B, hidden_dim)`` state.
        """
        h = h0
        outs: list[Tensor] = []
        for t in range(x.shape[0]):
            out, h = self(x[t], h, None if resets is None else resets[t])
            outs.append(out)
        if not outs:
            return x.new_zeros(0, h0.shape[0], self.hidden_dim), h0
        return torch.stack(outs), h
