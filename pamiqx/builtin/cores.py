"""Built-in recurrent-core policy models (``qlstm``, ``qgru``, ``ttt``)."""

from __future__ import annotations

from pamiqx.api import ModelPlugin
from pamiqx.api.hooks import hookimpl


@hookimpl
def pamiqx_register_models() -> list[type[ModelPlugin]]:
    """Return the recurrent-core policy models."""
    return []
