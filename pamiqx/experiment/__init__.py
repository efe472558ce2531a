"""Experiment files: their schema (:mod:`.schema`) and how they are read (:mod:`.loader`)."""

from pamiqx.experiment.loader import (
    apply_overrides,
    load_experiment,
    load_raw,
    merge_tables,
    parse_override,
    resolve,
)
from pamiqx.experiment.schema import (
    DEFAULT_CURIOSITY,
    DEFAULT_MODELS,
    Experiment,
    PluginTable,
    ResolvedExperiment,
    ResolvedPlugin,
    RunConfig,
    TrackingConfig,
)

__all__ = [
    "DEFAULT_CURIOSITY",
    "DEFAULT_MODELS",
    "Experiment",
    "PluginTable",
    "ResolvedExperiment",
    "ResolvedPlugin",
    "RunConfig",
    "TrackingConfig",
    "apply_overrides",
    "load_experiment",
    "load_raw",
    "merge_tables",
    "parse_override",
    "resolve",
]
