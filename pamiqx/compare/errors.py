"""The errors of ``pamiqx compare``."""

from __future__ import annotations

from pamiqx.api.errors import PamiqxError

__all__ = ["CompareError"]


class CompareError(PamiqxError):
    """Runs cannot be compared: no runs, no metrics, an unsupported output."""
