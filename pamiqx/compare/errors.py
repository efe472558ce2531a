"""The errors of ``pamiqx compare`` and ``pamiqx compare-suite``."""

from __future__ import annotations

from pamiqx.api.errors import PamiqxError

__all__ = ["CompareError", "SuiteError"]


class CompareError(PamiqxError):
    """Runs cannot be compared: no runs, no metrics, an unsupported output."""


class SuiteError(PamiqxError):
    """The comparison suite cannot start (no experiment files, a bad option)."""
