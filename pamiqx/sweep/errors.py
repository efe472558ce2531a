"""The error of a sweep or tune file a user can fix (exit code 2, before anything starts)."""

from __future__ import annotations

from pamiqx.api.errors import ExperimentError


class SweepError(ExperimentError):
    """A sweep or tune file is malformed, names an unknown key, or expands to a bad experiment."""
