"""The reference recurrent cores: QLSTM, QGRU and TTT stacks, and the parallel scan they use.

A plugin builds a core with ``RecurrentStack(kind, input_dim, sizes)`` and runs
windows (``forward_window``) or single steps (``step``) from a flat
``(B, state_dim)`` state; :data:`REFERENCE_SIZES` holds the reference
experiments' sizes. Sizes import without torch; the torch modules load on
first use (PEP 562), as in :mod:`pamiqx.api`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pamiqx.api.cores.sizes import REFERENCE_SIZES, SMALL_SIZES, CoreKind, CoreSizes

if TYPE_CHECKING:
    from pamiqx.api.cores.gated import GatedRecurrence, Mixer, QGRULayer, QLSTMLayer
    from pamiqx.api.cores.layers import RMSNorm, SwiGLU
    from pamiqx.api.cores.scan import linear_scan
    from pamiqx.api.cores.stack import CoreBlock, RecurrentStack
    from pamiqx.api.cores.ttt import TTTLayer

_LAZY: dict[str, str] = {
    "GatedRecurrence": "pamiqx.api.cores.gated",
    "Mixer": "pamiqx.api.cores.gated",
    "QGRULayer": "pamiqx.api.cores.gated",
    "QLSTMLayer": "pamiqx.api.cores.gated",
    "RMSNorm": "pamiqx.api.cores.layers",
    "SwiGLU": "pamiqx.api.cores.layers",
    "linear_scan": "pamiqx.api.cores.scan",
    "CoreBlock": "pamiqx.api.cores.stack",
    "RecurrentStack": "pamiqx.api.cores.stack",
    "TTTLayer": "pamiqx.api.cores.ttt",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pamiqx.api.cores' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "REFERENCE_SIZES",
    "SMALL_SIZES",
    "CoreBlock",
    "CoreKind",
    "CoreSizes",
    "GatedRecurrence",
    "Mixer",
    "QGRULayer",
    "QLSTMLayer",
    "RMSNorm",
    "RecurrentStack",
    "SwiGLU",
    "TTTLayer",
    "linear_scan",
]
