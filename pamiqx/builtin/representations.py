"""Built-in representation stages: ``pixels`` (the identity) and ``random`` (a frozen random encoder)."""

from __future__ import annotations

from pamiqx.api import RepresentationPlugin
from pamiqx.api.hooks import hookimpl


@hookimpl
def pamiqx_register_representations() -> list[type[RepresentationPlugin]]:
    """Return the built-in representations."""
    return []
