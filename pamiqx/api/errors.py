"""Exceptions for mistakes a user can fix.

The command line turns every :class:`PamiqxError` into a short message and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PamiqxError(Exception):
    """A problem the user can act on (bad file, unknown plugin, corrupt checkpoint)."""


class ExperimentError(PamiqxError):
    """An experiment file or a command-line override is invalid."""


class PluginError(PamiqxError):
    """A plugin is unknown, ambiguous, failed to load or failed to build."""


class CheckpointError(PamiqxError):
    """A checkpoint is missing, corrupt or from another experiment."""


class EnvironmentUnavailableError(PamiqxError):
    """An environment cannot start (a device, connection or dependency is missing)."""
