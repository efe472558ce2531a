"""Sizes of the core stacks and the reference presets (no torch: option classes import it)."""

from __future__ import annotations

from typing import Literal

import attrs

CoreKind = Literal["qlstm", "qgru", "ttt"]


@attrs.frozen
class CoreSizes:
    """Sizes of a core stack.

    Attributes:
        depth: Number of blocks.
        width: Width of the blocks (and of the stack's output).
        ff_ratio: Hidden width of each SwiGLU feed-forward over ``width``.
        dropout: Dropout rate, applied only in ``regularize=True`` calls.
        heads: TTT heads (``ttt`` only).
        inner_ratio: Hidden width of a TTT head's fast MLP over the head width.
        chunk: Steps per chunkwise TTT update.
        base_lr: Range of the TTT heads' initial inner learning rates.
    """

    depth: int = 2
    width: int = 128
    ff_ratio: float = 4.0
    dropout: float = 0.0
    heads: int = 4
    inner_ratio: float = 4.0
    chunk: int = 16
    base_lr: tuple[float, float] = (1e-4, 0.1)


REFERENCE_SIZES: dict[CoreKind, CoreSizes] = {
    "qlstm": CoreSizes(depth=8, width=1024, ff_ratio=4.0, dropout=0.1),
    "qgru": CoreSizes(depth=8, width=1024, ff_ratio=4.0, dropout=0.1),
    "ttt": CoreSizes(
        depth=16, width=1024, ff_ratio=4.0, dropout=0.1, heads=32, inner_ratio=4.0, chunk=64
    ),
}
"""The cores of the reference experiments' ``stacked_hiddens`` and ``ttt`` models."""

SMALL_SIZES = CoreSizes()
"""A core small enough to train on a CPU (the plugins' default preset)."""
