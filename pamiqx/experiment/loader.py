"""Experiment files: TOML with ``extends``, command-line overrides, validation.

Loading happens in three steps:

1. :func:`~pamiqx.experiment.raw.load_raw` reads the file and the files it
   ``extends`` (relative paths, merged depth-first: the extending file wins,
   tables merge, a table that switches ``plugin`` replaces the inherited one
   instead of mixing options of two plugins), remembering which file set each key.
2. :func:`~pamiqx.experiment.raw.apply_overrides` applies ``a.b.c=VALUE``
   overrides (VALUE is read as a TOML value; a bare word is a string).
3. :func:`resolve` validates the host's sections into :class:`Experiment`,
   finds each named plugin and validates its table with the plugin's own
   options class.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pamiqx.api.errors import PluginError
from pamiqx.api.plugin import PluginKind
from pamiqx.experiment.raw import apply_overrides, load_raw
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
from pamiqx.learner.options import PPOOptions
from pamiqx.options import KeySources, Structurer
from pamiqx.plugins.manager import PluginManager
from pamiqx.suggest import did_you_mean

# --- step 3: validation and plugin resolution ----------------------------------------------

MAX_NAME_LENGTH = 128
_HOST_SECTIONS = {
    "run": RunConfig,
    "policy": PPOOptions,
    "tracking": TrackingConfig,
}
_TOP_KEYS = (
    "name",
    "seed",
    "description",
    "run",
    "environment",
    "representation",
    "models",
    "curiosity",
    "policy",
    "tracking",
)


def resolve(
    data: Mapping[str, Any], sources: KeySources, manager: PluginManager, path: Path | None = None
) -> ResolvedExperiment:
    """Validate experiment data and resolve every plugin it names.

    Args:
        data: Raw experiment data (after ``extends`` and overrides).
        sources: Which file set each key.
        manager: The loaded plugin registry.
        path: The experiment file, kept for reference.

    Returns:
        The validated experiment.

    Raises:
        ExperimentError: A key is unknown, missing or of the wrong type.
        PluginError: A named plugin is unknown or ambiguous (the message names the key).
    """
    st = Structurer(sources)
    for key in data:
        if key not in _TOP_KEYS:
            raise st.error(
                key,
                f"unknown key.{did_you_mean(key, _TOP_KEYS)} Valid keys: {', '.join(_TOP_KEYS)}.",
            )
    name = st.convert(str, data["name"], "name") if "name" in data else None
    if not name:
        raise st.error(
            "name", "missing required key; expected a non-empty string naming the experiment."
        )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise st.error(
            "name", f"expected letters, digits, '-', '_' or '.', got {name!r} (it names folders)."
        )
    if len(name) > MAX_NAME_LENGTH:
        # It names the run's folder (and the suite's log files): too long a folder name
        # would fail when the run starts, blamed on the log folder.
        raise st.error(
            "name",
            f"expected at most {MAX_NAME_LENGTH} characters, got {len(name)} (it names the "
            "run's folder, and file systems limit folder names to 255 bytes).",
        )
    seed = st.convert(int, data.get("seed", 0), "seed")
    if seed < 0:
        raise st.error("seed", f"expected a non-negative integer, got {seed}.")
    description = st.convert(str, data.get("description", ""), "description")
    host = {k: st.structure(cls, data.get(k, {}), k) for k, cls in _HOST_SECTIONS.items()}

    if "environment" not in data:
        raise st.error("environment", 'missing required table [environment] with plugin = "...".')
    environment_table = _plugin_table(st, data["environment"], "environment", default=None)
    representation_table = _plugin_table(
        st, data.get("representation", {}), "representation", default=DEFAULT_REPRESENTATION
    )
    curiosity_table = _plugin_table(
        st, data.get("curiosity", {}), "curiosity", default=DEFAULT_CURIOSITY
    )
    models_data = data.get("models", {})
    if not isinstance(models_data, Mapping):
        raise st.error("models", 'expected tables such as [models.encoder] with plugin = "...".')
    model_tables = {
        role: _plugin_table(st, models_data.get(role, {}), f"models.{role}", default=plugin)
        for role, plugin in DEFAULT_MODELS.items()
    }
    for role, table in models_data.items():
        if role not in model_tables:
            model_tables[role] = _plugin_table(st, table, f"models.{role}", default=None)

    experiment = Experiment(
        name=name,
        seed=seed,
        description=description,
        run=host["run"],
        policy=host["policy"],
        tracking=host["tracking"],
        environment=environment_table,
        representation=representation_table,
        models=model_tables,
        curiosity=curiosity_table,
    )
    return ResolvedExperiment(
        experiment=experiment,
        environment=_resolve_plugin(st, manager, "environment", environment_table, "environment"),
        representation=_resolve_plugin(
            st, manager, "representation", representation_table, "representation"
        ),
        models={
            role: _resolve_plugin(st, manager, "model", table, f"models.{role}")
            for role, table in model_tables.items()
        },
        curiosity=_resolve_plugin(st, manager, "curiosity", curiosity_table, "curiosity"),
        source=path,
    )


def _plugin_table(st: Structurer, data: object, key: str, default: str | None) -> PluginTable:
    if not isinstance(data, Mapping):
        raise st.error(key, f'expected a table with plugin = "...", got {data!r}.')
    options = dict(data)
    plugin = options.pop("plugin", default)
    if plugin is None:
        raise st.error(f"{key}.plugin", "missing required key; expected the name of a plugin.")
    if not isinstance(plugin, str):
        raise st.error(
            f"{key}.plugin", f"expected the name of a plugin (a string), got {plugin!r}."
        )
    return PluginTable(plugin=plugin, options=options)


def _resolve_plugin(
    st: Structurer, manager: PluginManager, kind: PluginKind, table: PluginTable, key: str
) -> ResolvedPlugin:
    try:
        entry = manager.lookup(kind, table.plugin)
    except PluginError as error:
        raise st.error(f"{key}.plugin", str(error)) from None
    options = st.structure(entry.plugin.Options, table.options, key)
    return ResolvedPlugin(entry=entry, options=options)


def load_experiment(
    path: Path, overrides: Sequence[str] = (), manager: PluginManager | None = None
) -> ResolvedExperiment:
    """Load, override, validate and resolve an experiment file.

    Args:
        path: The experiment file.
        overrides: ``a.b.c=VALUE`` strings from the command line.
        manager: A loaded plugin registry (discovered when None).

    Returns:
        The resolved experiment.
    """
    if manager is None:
        from pamiqx.plugins.manager import load_plugins

        manager = load_plugins()
    data, sources = load_raw(path)
    data = apply_overrides(data, sources, overrides)
    return resolve(data, sources, manager, path)
