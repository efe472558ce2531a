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
from typing import Any, Literal

import attrs
import tomli_w

from pamiqx.api import PluginKind
from pamiqx.errors import ExperimentError, PluginError
from pamiqx.options import KeySources, Structurer, unstructure
from pamiqx.plugins.manager import PluginEntry, PluginManager
from pamiqx.suggest import did_you_mean

_positive = attrs.validators.gt(0)
_non_negative = attrs.validators.ge(0)
_positive_float = attrs.validators.gt(0.0)
_non_negative_float = attrs.validators.ge(0.0)
_unit = [attrs.validators.ge(0.0), attrs.validators.le(1.0)]


def _device(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise ValueError(
            f"{attribute.name} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}"
        )


@attrs.frozen
class RunConfig:
    """How long a run lasts and where it runs.

    Attributes:
        max_steps: Environment steps (summed over parallel worlds) before the run ends.
        device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``, or ``bf16`` autocast on CUDA.
        num_envs: Parallel copies of a lock-step world.
        mode: ``auto`` (the environment decides), ``lockstep`` or ``realtime``.
        time_scale: Real-time speed-up (pamiq-core time scale); 1 for real worlds.
        checkpoint_every: Steps between checkpoints (0: only at the end and on signals).
        keep_checkpoints: How many of the latest checkpoints to keep.
        log_every: Steps between metric log lines and tracked metric points.
        log_dir: Root of run directories; empty means ``$PAMIQX_LOG_DIR`` or ``./logs``.
    """

    max_steps: int = attrs.field(default=100_000, validator=_positive)
    device: str = attrs.field(default="auto", validator=_device)
    precision: Literal["fp32", "bf16"] = "fp32"
    num_envs: int = attrs.field(default=1, validator=_positive)
    mode: Literal["auto", "lockstep", "realtime"] = "auto"
    time_scale: float = attrs.field(default=1.0, validator=_positive_float)
    checkpoint_every: int = attrs.field(default=10_000, validator=_non_negative)
    keep_checkpoints: int = attrs.field(default=3, validator=_positive)
    log_every: int = attrs.field(default=1_000, validator=_positive)
    log_dir: str = ""


@attrs.frozen
class PolicyConfig:
    """The built-in PPO learner.

    Attributes:
        lr: Learning rate.
        optimizer: ``adam``, or ``sgd`` (Nesterov momentum 0.9, as in the reference).
        weight_decay: L2 weight decay.
        rollout_steps: Steps per world collected before each training phase.
        epochs: Passes over each rollout.
        minibatch_size: Transitions per gradient step (whole sequences when recurrent).
        sequence_length: Window of consecutive steps for a recurrent policy.
        gamma_ext: Discount of the extrinsic reward (episodic).
        gamma_int: Discount of the intrinsic reward (non-episodic).
        gae_lambda: GAE lambda.
        clip_range: PPO ratio clip.
        value_clip_range: Clip of the value update around the old value (absent: none).
        value_coef: Weight of the value losses.
        entropy_coef: Weight of the entropy bonus.
        max_grad_norm: Gradient-norm clip.
        ext_coef: Weight of extrinsic advantages.
        int_coef: Weight of intrinsic advantages.
        normalize_advantages: Divide advantages by their std (after centring).
    """

    lr: float = attrs.field(default=3e-4, validator=_positive_float)
    optimizer: Literal["adam", "sgd"] = "adam"
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative_float)
    rollout_steps: int = attrs.field(default=128, validator=_positive)
    epochs: int = attrs.field(default=4, validator=_positive)
    minibatch_size: int = attrs.field(default=64, validator=_positive)
    sequence_length: int = attrs.field(default=32, validator=_positive)
    gamma_ext: float = attrs.field(default=0.999, validator=_unit)
    gamma_int: float = attrs.field(default=0.99, validator=_unit)
    gae_lambda: float = attrs.field(default=0.95, validator=_unit)
    clip_range: float = attrs.field(default=0.2, validator=_positive_float)
    value_clip_range: float | None = None
    value_coef: float = attrs.field(default=0.5, validator=_non_negative_float)
    entropy_coef: float = attrs.field(default=0.01, validator=_non_negative_float)
    max_grad_norm: float = attrs.field(default=0.5, validator=_positive_float)
    ext_coef: float = attrs.field(default=2.0, validator=_non_negative_float)
    int_coef: float = attrs.field(default=1.0, validator=_non_negative_float)
    normalize_advantages: bool = True


@attrs.frozen
class TrackingConfig:
    """Metrics in Aim.

    Attributes:
        enabled: Track metrics in an Aim repository.
        repo: Aim repository folder; empty means ``<log_dir>/aim``.
        experiment: Aim experiment name; empty means the experiment's name.
        system_metrics: Let Aim sample CPU/GPU usage in the background.
    """

    enabled: bool = True
    repo: str = ""
    experiment: str = ""
    system_metrics: bool = False


@attrs.frozen
class PluginTable:
    """A ``[section]`` that names a plugin; its other keys are the plugin's options."""

    plugin: str
    options: dict[str, Any] = attrs.field(factory=dict)


DEFAULT_MODELS: dict[str, str] = {"encoder": "conv-encoder", "policy": "actor-critic"}
DEFAULT_CURIOSITY = "none"


@attrs.frozen
class Experiment:
    """The host's view of an experiment file (plugin options still raw)."""

    name: str
    seed: int
    description: str
    run: RunConfig
    policy: PolicyConfig
    tracking: TrackingConfig
    environment: PluginTable
    models: dict[str, PluginTable]
    curiosity: PluginTable


@attrs.frozen
class ResolvedPlugin:
    """A plugin found in the registry with its validated options."""

    entry: PluginEntry
    options: Any


@attrs.frozen
class ResolvedExperiment:
    """An experiment whose plugins are found and whose every option is validated."""

    experiment: Experiment
    environment: ResolvedPlugin
    models: dict[str, ResolvedPlugin]
    curiosity: ResolvedPlugin
    source: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the experiment with every default filled in, as TOML-compatible data."""
        exp = self.experiment

        def table(resolved: ResolvedPlugin, written: str) -> dict[str, Any]:
            return {"plugin": written, **unstructure(resolved.options)}

        return {
            "name": exp.name,
            "seed": exp.seed,
            "description": exp.description,
            "run": unstructure(exp.run),
            "environment": table(self.environment, exp.environment.plugin),
            "models": {k: table(v, exp.models[k].plugin) for k, v in self.models.items()},
            "curiosity": table(self.curiosity, exp.curiosity.plugin),
            "policy": unstructure(exp.policy),
            "tracking": unstructure(exp.tracking),
        }

    def to_toml(self) -> str:
        """Return the resolved experiment as TOML, headed by the plugins' versions."""
        header = ["# Resolved by pamiqx; `pamiqx run` on this file repeats the experiment."]
        for role, resolved in [("environment", self.environment), ("curiosity", self.curiosity)]:
            header.append(_provenance_line(role, resolved))
        for key, resolved in self.models.items():
            header.append(_provenance_line(f"models.{key}", resolved))
        return "\n".join(header) + "\n\n" + tomli_w.dumps(self.to_dict())


def _provenance_line(role: str, resolved: ResolvedPlugin) -> str:
    entry = resolved.entry
    return f"# {role}: '{entry.name}' from {entry.distribution} {entry.version}"


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
    "policy": PolicyConfig,
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
