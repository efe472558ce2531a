"""The whole plugin contract, in one file.

A plugin distribution declares an entry point in the ``pamiqx`` group naming a
module. That module implements any of these hooks, marked with
:data:`pamiqx.hookimpl`. Registration hooks return plugin *classes* (see
:mod:`pamiqx.api`) and must not import heavy libraries; lifecycle hooks let a
plugin observe a run without changing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pamiqx.markers import hookspec

if TYPE_CHECKING:
    from pamiqx.api import CuriosityPlugin, EnvironmentPlugin, ModelPlugin


@hookspec
def pamiqx_register_environments() -> list[type[EnvironmentPlugin]]:
    """Return the environment plugin classes this distribution provides."""
    raise AssertionError("hook specification, never called")


@hookspec
def pamiqx_register_models() -> list[type[ModelPlugin]]:
    """Return the model plugin classes this distribution provides."""
    raise AssertionError("hook specification, never called")


@hookspec
def pamiqx_register_curiosities() -> list[type[CuriosityPlugin]]:
    """Return the curiosity plugin classes this distribution provides."""
    raise AssertionError("hook specification, never called")


@hookspec
def pamiqx_experiment_start(experiment: dict[str, Any], run_dir: Path) -> None:
    """Called once a run directory exists, before the first step.

    Args:
        experiment: The resolved experiment as plain TOML-compatible data.
        run_dir: The run directory.
    """


@hookspec
def pamiqx_experiment_end(experiment: dict[str, Any], run_dir: Path, status: str) -> None:
    """Called when a run ends.

    Args:
        experiment: The resolved experiment as plain TOML-compatible data.
        run_dir: The run directory.
        status: ``"finished"``, ``"interrupted"`` or ``"failed"``.
    """


@hookspec
def pamiqx_metrics_emitted(step: int, metrics: dict[str, float]) -> None:
    """Called with every batch of metrics the host logs.

    Args:
        step: Environment steps so far.
        metrics: Metric name to value.
    """


@hookspec
def pamiqx_checkpoint_saved(path: Path, step: int) -> None:
    """Called after a checkpoint has been written completely.

    Args:
        path: The checkpoint folder.
        step: Environment steps it holds.
    """
