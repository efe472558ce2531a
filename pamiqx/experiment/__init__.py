"""Experiment files: schema (:mod:`.schema`), raw data (:mod:`.raw`), checks (:mod:`.loader`)."""

from pamiqx.experiment.loader import load_experiment, resolve
from pamiqx.experiment.raw import apply_overrides, load_raw, merge_tables, parse_override
from pamiqx.experiment.schema import (
    DEFAULT_CURIOSITY,
    DEFAULT_MODELS,
    DEFAULT_REPRESENTATION,
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
    "DEFAULT_REPRESENTATION",
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
