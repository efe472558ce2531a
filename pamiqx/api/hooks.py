"""The hooks a plugin distribution implements, and the pluggy markers for them.

These are the hooks, not the whole contract: the classes the registration hooks
return and the objects a run exchanges with them are in :mod:`pamiqx.api`,
which re-exports everything a plugin may import.

A plugin distribution declares an entry point in the ``pamiqx`` group naming a
module. That module implements any of these hooks, marked with
:data:`hookimpl`. The host calls every hook through pluggy's hook relay, so
``PAMIQX_TRACE_HOOKS=1`` traces each call and ``tryfirst``, ``trylast`` and
wrappers (``hookimpl(wrapper=True)``) work as pluggy documents.

* Registration hooks return plugin *classes* and must not import heavy
  libraries (torch is imported inside ``build``). A registration hook that
  raises is reported as a load failure of its distribution.
* Lifecycle hooks observe a run without changing it. An implementation that
  raises is reported on the display and the run goes on; the other plugins'
  implementations are still called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pamiqx.api.curiosity import CuriosityPlugin
    from pamiqx.api.environment import EnvironmentPlugin
    from pamiqx.api.model import ModelPlugin
    from pamiqx.api.representation import RepresentationPlugin

PROJECT_NAME = "pamiqx"
ENTRY_POINT_GROUP = "pamiqx"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a function of a plugin module as the implementation of a hook."""


@hookspec
def pamiqx_register_environments() -> list[type[EnvironmentPlugin]]:
    """Return the environment plugin classes this distribution provides."""
    raise AssertionError("hook specification, never called")


@hookspec
def pamiqx_register_representations() -> list[type[RepresentationPlugin]]:
    """Return the representation plugin classes this distribution provides."""
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
