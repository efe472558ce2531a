"""Experiment files: TOML with ``extends``, command-line overrides, validation.

Loading happens in three steps:

1. :func:`load_raw` reads the file and the files it ``extends`` (relative
   paths, merged depth-first: the extending file wins, tables merge, a table
   that switches ``plugin`` replaces the inherited one instead of mixing
   options of two plugins), remembering which file set each key.
2. :func:`apply_overrides` applies ``a.b.c=VALUE`` overrides (VALUE is read as a
   TOML value; a bare word is a string).
3. :func:`resolve` validates the host's sections into :class:`Experiment`,
   finds each named plugin and validates its table with the plugin's own
   options class.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pamiqx.api.errors import ExperimentError, PluginError
from pamiqx.api.plugin import PluginKind
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
from pamiqx.learner.options import PPOOptions
from pamiqx.options import KeySources, Structurer
from pamiqx.plugins.manager import PluginManager
from pamiqx.suggest import did_you_mean

# --- step 1: files and extends ---------------------------------------------------------


def load_raw(path: Path) -> tuple[dict[str, Any], KeySources]:
    """Read an experiment file and everything it extends.

    Args:
        path: The experiment file.

    Returns:
        The merged data and the file that set each key.

    Raises:
        ExperimentError: A file is missing, unreadable, not TOML, or extends cyclically.
    """
    sources = KeySources(str(path))
    data = _load_with_extends(path, sources, chain=())
    return data, sources


def _read_toml(path: Path, referenced_from: str | None) -> dict[str, Any]:
    where = f" (extended by {referenced_from})" if referenced_from else ""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExperimentError(f"{path}: experiment file not found{where}.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ExperimentError(f"{path}: cannot read the experiment file{where}: {error}.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ExperimentError(f"{path}: not valid TOML{where}: {error}.") from None


def _load_with_extends(path: Path, sources: KeySources, chain: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ExperimentError(
            f"{path}: key 'extends': the files extend each other in a cycle: {cycle}."
        )
    data = _read_toml(path, str(chain[-1]) if chain else None)
    parents = data.pop("extends", [])
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise ExperimentError(
            f"{path}: key 'extends': expected a file name or an array of file names, "
            f"got {parents!r}."
        )
    merged: dict[str, Any] = {}
    for parent in parents:
        parent_path = path.parent / parent
        if not parent_path.is_file():
            raise ExperimentError(
                f"{path}: key 'extends': the file '{parent}' does not exist "
                f"(looked for {parent_path})."
            )
        parent_data = _load_with_extends(parent_path, sources, (*chain, resolved))
        merged = merge_tables(merged, parent_data)
    _record_sources(data, str(path), "", sources)
    return merge_tables(merged, data)


def merge_tables(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two tables: ``top`` wins, nested tables merge.

    A table whose ``plugin`` differs between the two is replaced rather than
    merged, so one plugin never inherits another plugin's options.

    Args:
        base: The inherited table.
        top: The overriding table.

    Returns:
        A new merged table.
    """
    merged = dict(base)
    for key, value in top.items():
        old = merged.get(key)
        if (
            isinstance(old, dict)
            and isinstance(value, dict)
            and ("plugin" not in value or old.get("plugin") == value.get("plugin"))
        ):
            merged[key] = merge_tables(old, value)
        else:
            merged[key] = value
    return merged


def _record_sources(data: Mapping[str, Any], source: str, prefix: str, sources: KeySources) -> None:
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            if "plugin" in value:
                sources.set(dotted, source)
            _record_sources(value, source, dotted, sources)
        else:
            sources.set(dotted, source)


# --- step 2: overrides -------------------------------------------------------------------

_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_BARE_WORD = re.compile(r"[A-Za-z_./~][A-Za-z0-9_.:/+~-]*")


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=VALUE``; VALUE is a TOML value, a bare word a string.

    Args:
        text: One override as typed.

    Returns:
        The key path and the value.

    Raises:
        ExperimentError: Not of the form ``key.path=VALUE`` or VALUE is not TOML.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.fullmatch(key):
        raise ExperimentError(
            f"command-line override '{text}': expected KEY.PATH=VALUE, e.g. run.max_steps=5000."
        )
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if not _BARE_WORD.fullmatch(raw):
            raise ExperimentError(
                f"command-line override '{text}': the value '{raw}' is not a TOML value "
                "(quote strings that contain spaces or symbols, e.g. key='\"a b\"')."
            ) from None
        value = raw
    return key.split("."), value


def apply_overrides(
    data: dict[str, Any], sources: KeySources, overrides: Sequence[str]
) -> dict[str, Any]:
    """Apply command-line overrides to raw experiment data.

    Keys are checked against the schema when the result is resolved; an
    override of a key that does not exist fails there, named as an override.
    Setting ``<table>.plugin`` to another plugin drops the table's other keys
    (they belong to the old plugin); later overrides can set the new plugin's.

    Args:
        data: The merged experiment data.
        sources: Key sources, updated with the overrides.
        overrides: ``a.b.c=VALUE`` strings.

    Returns:
        New data with the overrides applied.
    """
    result = merge_tables({}, data)
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                prefix = ".".join(path[: i + 1])
                raise ExperimentError(
                    f"command-line override '{text}': '{prefix}' is a value, not a table."
                )
            node = child
        if path[-1] == "plugin" and node.get("plugin", value) != value:
            # As with extends: switching plugin drops the options of the old one.
            node.clear()
            sources.set(".".join(path[:-1]), f"command-line override '{text}'")
        node[path[-1]] = value
        sources.set(".".join(path), f"command-line override '{text}'")
    return result


# --- step 3: validation and plugin resolution ----------------------------------------------

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
    seed = st.convert(int, data.get("seed", 0), "seed")
    description = st.convert(str, data.get("description", ""), "description")
    host = {k: st.structure(cls, data.get(k, {}), k) for k, cls in _HOST_SECTIONS.items()}

    if "environment" not in data:
        raise st.error("environment", 'missing required table [environment] with plugin = "...".')
    environment_table = _plugin_table(st, data["environment"], "environment", default=None)
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
        models=model_tables,
        curiosity=curiosity_table,
    )
    return ResolvedExperiment(
        experiment=experiment,
        environment=_resolve_plugin(st, manager, "environment", environment_table, "environment"),
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
