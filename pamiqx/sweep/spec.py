"""Sweep files: what ``pamiqx sweep`` and ``pamiqx tune`` read, checked key by key.

A sweep file names a base experiment, keys set for every run, named variants
(each an experiment file and/or keys), a grid of key values, and the resources
of each run::

    name = "compare-maze"
    experiment = "../rnd-maze.toml"      # relative to this file

    [set]                                 # every run
    run.max_steps = 12_288

    [variants]                            # one axis of named experiments
    rnd = "../rnd-maze.toml"
    none = { curiosity.plugin = "none" }  # the base experiment with these keys

    [grid]                                # the product of these axes
    seed = [0, 1, 2, 3, 4]

    [resources]
    cpus = 1
    gpus = 0.0
    max_concurrent = 2
    max_failures = 3

``grid.experiment = ["a.toml", "b.toml"]`` is an axis of files (named by their
stems), the short form of variants. A tune file adds ``[tune]``
(:class:`TuneSettings`). Every mistake is a :class:`SweepError` naming the file
and the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from pamiqx.api.search import Choice, IntRange, LogUniform, SearchDomain, Uniform
from pamiqx.suggest import did_you_mean
from pamiqx.sweep.errors import SweepError
from pamiqx.sweep.reader import RESERVED_KEYS, SweepReader

__all__ = ["Resources", "SweepFile", "TuneSettings", "Variant", "load_sweep_file"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_TOP_KEYS = (
    "name",
    "description",
    "experiment",
    "storage",
    "set",
    "variants",
    "grid",
    "resources",
    "tune",
)
_RESOURCE_KEYS = ("cpus", "gpus", "max_concurrent", "max_failures")
_TUNE_KEYS = (
    "trials",
    "seeds",
    "eval_seeds",
    "metric",
    "grace_steps",
    "reduction_factor",
    "search",
    "out",
    "space",
    "plugin_spaces",
)
SEARCH_ALGORITHMS = ("random", "optuna")
# The sweep decides where each run writes: one run directory root per trial, one Aim repository.


@attrs.frozen
class Variant:
    """A named experiment of a sweep.

    Attributes:
        name: The variant's name (part of each trial's name and folder).
        experiment: Its experiment file (None: the sweep's base experiment).
        keys: Experiment keys it sets, dotted (``curiosity.plugin``), in override order.
    """

    name: str
    experiment: Path | None
    keys: dict[str, Any]


@attrs.frozen
class Resources:
    """What each trial asks of Ray, and how trials are retried.

    Attributes:
        cpus: CPUs per trial.
        gpus: GPUs (or a fraction of one) per trial.
        max_concurrent: Trials at a time (0: as many as the resources allow).
        max_failures: Retries of a failed or lost trial, each from its latest checkpoint.
    """

    cpus: float = 1.0
    gpus: float = 0.0
    max_concurrent: int = 0
    max_failures: int = 3


@attrs.frozen
class TuneSettings:
    """The ``[tune]`` table of a tune file.

    Attributes:
        trials: Sampled settings per variant (the same for every variant).
        seeds: Tuning seeds: each trial runs its settings on these, one after another.
        eval_seeds: The fresh seeds of the evaluation sweep written at the end.
        metric: The metric to maximise (its last value, averaged over the tuning seeds).
        grace_steps: Steps before ASHA may stop a trial (None: a quarter of a run).
        reduction_factor: ASHA's reduction factor.
        search: ``random`` (Tune's BasicVariantGenerator) or ``optuna``.
        out: Where the tuned experiment files go (None: ``<storage>/tuned``).
        space: Search space over experiment keys, declared in the file.
        plugin_spaces: Also search the spaces the plugins declare for their options.
    """

    trials: int = 8
    seeds: tuple[int, ...] = (100,)
    eval_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    metric: str = "coverage"
    grace_steps: int | None = None
    reduction_factor: int = 3
    search: str = "random"
    out: str | None = None
    space: dict[str, SearchDomain] = attrs.Factory(dict)
    plugin_spaces: bool = True


@attrs.frozen
class SweepFile:
    """A parsed sweep (or tune) file; paths are absolute.

    Attributes:
        path: The file.
        name: The sweep's name (its default storage folder, its trials' names).
        description: Free text.
        experiment: The base experiment file (None when every variant names one).
        storage: Where runs and Ray's state go, as written (None: ``logs/sweeps/<name>``).
        common: Keys set for every run, dotted.
        variants: The named experiments (empty: the base experiment alone).
        grid: Axes of ``(dotted key, values)``, in file order.
        resources: Per-trial resources.
        tune: The ``[tune]`` table of a tune file.
    """

    path: Path
    name: str
    description: str
    experiment: Path | None
    storage: str | None
    common: dict[str, Any]
    variants: tuple[Variant, ...]
    grid: tuple[tuple[str, tuple[Any, ...]], ...]
    resources: Resources
    tune: TuneSettings | None


def load_sweep_file(path: Path, *, tune: bool = False) -> SweepFile:
    """Read and check a sweep file (``tune=True``: a tune file, with ``[tune]``).

    Args:
        path: The file.
        tune: Read it for ``pamiqx tune`` (``[tune]`` allowed, ``[grid]`` not).

    Returns:
        The parsed file.

    Raises:
        SweepError: The file is missing, not TOML, or a key is unknown or invalid.
    """
    path = path.absolute()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SweepError(f"{path}: sweep file not found.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SweepError(f"{path}: cannot read the sweep file: {error}.") from None
    try:
        data = tomllib.loads(text)
    except (ValueError, RecursionError) as error:  # tomllib's errors, and absurd nesting
        raise SweepError(f"{path}: not valid TOML: {error}.") from None
    r = SweepReader(path)
    r.check_keys(data, _TOP_KEYS, "")
    if "tune" in data and not tune:
        raise r.error("tune", "a tune file's table: run it with `pamiqx tune`.")
    if "name" not in data:
        raise r.error("name", "missing required key; expected the sweep's name.")
    name = r.string(data["name"], "name")
    if not _NAME.fullmatch(name) or len(name) > 100:
        raise r.error("name", f"expected letters, digits, '-', '_' or '.', got {name!r}.")
    description = r.string(data.get("description", ""), "description")
    storage = r.string(data["storage"], "storage") if "storage" in data else None
    experiment = r.file(data["experiment"], "experiment") if "experiment" in data else None
    common = r.keys(r.table(data, "set"), "set")
    grid_table = r.table(data, "grid")
    files = grid_table.pop("experiment", None)
    variants = _variants(r, r.table(data, "variants"), experiment)
    if files is not None:
        if variants:
            raise r.error(
                "grid.experiment", "give experiment files in [variants] or here, not both."
            )
        variants = _file_axis(r, files)
    if not variants and experiment is None:
        raise r.error("experiment", "missing: name the base experiment file (or give variants).")
    grid = _grid(r, grid_table)
    if tune and grid:
        raise r.error("grid", "a tune file has no grid: its seeds are tune.seeds.")
    resources = _resources(r, r.table(data, "resources"))
    settings = _tune(r, r.table(data, "tune")) if tune else None
    return SweepFile(
        path, name, description, experiment, storage, common, variants, grid, resources, settings
    )


def _variants(r: SweepReader, table: dict[str, Any], base: Path | None) -> tuple[Variant, ...]:
    variants = []
    for name, value in table.items():
        key = f"variants.{name}"
        if not _NAME.fullmatch(name):
            raise r.error(key, "a variant's name takes letters, digits, '-', '_' or '.'.")
        if isinstance(value, str):
            variants.append(Variant(name, r.file(value, key), {}))
            continue
        if not isinstance(value, Mapping):
            raise r.error(key, f"expected an experiment file or a table of keys, got {value!r}.")
        keys = dict(value)
        file = r.file(keys.pop("experiment"), f"{key}.experiment") if "experiment" in keys else None
        if file is None and base is None:
            raise r.error(key, "names no experiment file, and the sweep has no base 'experiment'.")
        variants.append(Variant(name, file, r.keys(keys, key)))
    return tuple(variants)


def _file_axis(r: SweepReader, files: object) -> tuple[Variant, ...]:
    if not isinstance(files, list) or not files:
        raise r.error("grid.experiment", f"expected a non-empty array of files, got {files!r}.")
    variants = [Variant(Path(r.string(f, "grid.experiment")).stem, None, {}) for f in files]
    paths = [r.file(f, "grid.experiment") for f in files]
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise r.error("grid.experiment", f"two files share a name: {names}.")
    return tuple(Variant(v.name, p, {}) for v, p in zip(variants, paths, strict=True))


def _grid(r: SweepReader, table: dict[str, Any]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    axes = []
    for dotted, values in r.keys(table, "grid").items():
        if not isinstance(values, list) or not values:
            raise r.error(
                f"grid.{dotted}", f"expected a non-empty array of values, got {values!r}."
            )
        axes.append((dotted, tuple(values)))
    return tuple(axes)


def _resources(r: SweepReader, table: dict[str, Any]) -> Resources:
    r.check_keys(table, _RESOURCE_KEYS, "resources")
    default = Resources()
    return Resources(
        cpus=r.number(table.get("cpus", default.cpus), "resources.cpus", 0.0, exclusive=True),
        gpus=r.number(table.get("gpus", default.gpus), "resources.gpus", 0.0, exclusive=False),
        max_concurrent=r.integer(
            table.get("max_concurrent", default.max_concurrent), "resources.max_concurrent", 0
        ),
        max_failures=r.integer(
            table.get("max_failures", default.max_failures), "resources.max_failures", 0
        ),
    )


def _tune(r: SweepReader, table: dict[str, Any]) -> TuneSettings:
    r.check_keys(table, _TUNE_KEYS, "tune")
    default = TuneSettings()
    seeds = r.seeds(table.get("seeds", list(default.seeds)), "tune.seeds")
    eval_seeds = r.seeds(table.get("eval_seeds", list(default.eval_seeds)), "tune.eval_seeds")
    shared = sorted(set(seeds) & set(eval_seeds))
    if shared:
        raise r.error("tune.eval_seeds", f"must be fresh seeds, but {shared} also tune.")
    search = r.string(table.get("search", default.search), "tune.search")
    if search not in SEARCH_ALGORITHMS:
        raise r.error(
            "tune.search",
            f"unknown search '{search}'.{did_you_mean(search, SEARCH_ALGORITHMS)} "
            f"Choose {' or '.join(SEARCH_ALGORITHMS)}.",
        )
    plugin_spaces = table.get("plugin_spaces", default.plugin_spaces)
    if not isinstance(plugin_spaces, bool):
        raise r.error("tune.plugin_spaces", f"expected true or false, got {plugin_spaces!r}.")
    return TuneSettings(
        trials=r.integer(table.get("trials", default.trials), "tune.trials", 1),
        seeds=seeds,
        eval_seeds=eval_seeds,
        metric=r.string(table.get("metric", default.metric), "tune.metric"),
        grace_steps=(
            r.integer(table["grace_steps"], "tune.grace_steps", 1)
            if "grace_steps" in table
            else None
        ),
        reduction_factor=r.integer(
            table.get("reduction_factor", default.reduction_factor), "tune.reduction_factor", 2
        ),
        search=search,
        out=r.string(table["out"], "tune.out") if "out" in table else None,
        space=_space(r, r.table(table, "space")),
        plugin_spaces=plugin_spaces,
    )


_DOMAINS: dict[str, Any] = {
    "uniform": Uniform,
    "loguniform": LogUniform,
    "int": IntRange,
    "choice": Choice,
}


def _space(r: SweepReader, table: dict[str, Any]) -> dict[str, SearchDomain]:
    """Read ``[tune.space]``: ``policy.lr = { loguniform = [1e-5, 1e-3] }`` and the like."""
    space: dict[str, SearchDomain] = {}
    for dotted, domain in _domain_leaves(table, ""):
        key = f"tune.space.{dotted}"
        if dotted in RESERVED_KEYS or dotted in ("name", "seed") or dotted.endswith(".plugin"):
            raise r.error(key, "cannot be searched (the sweep or the tune file decides it).")
        if not isinstance(domain, Mapping) or len(domain) != 1:
            raise r.error(
                key,
                "expected one of { uniform = [LOW, HIGH] }, { loguniform = [LOW, HIGH] }, "
                f"{{ int = [LOW, HIGH] }} or {{ choice = [A, B, ...] }}, got {domain!r}.",
            )
        ((kind, bounds),) = domain.items()
        if kind not in _DOMAINS:
            raise r.error(
                f"{key}.{kind}",
                f"unknown range.{did_you_mean(kind, tuple(_DOMAINS))} "
                f"Ranges: {', '.join(_DOMAINS)}.",
            )
        if not isinstance(bounds, list) or (kind != "choice" and len(bounds) != 2):
            raise r.error(f"{key}.{kind}", f"expected [LOW, HIGH], got {bounds!r}.")
        try:
            space[dotted] = _DOMAINS[kind](*bounds)
        except (TypeError, ValueError) as error:
            raise r.error(f"{key}.{kind}", f"{error}.") from None
    return space


def _domain_leaves(table: Mapping[str, Any], prefix: str) -> list[tuple[str, Any]]:
    """Split ``[tune.space]`` into (dotted key, domain table).

    A domain is a one-key table whose key is a range kind (``uniform``...).
    """
    leaves = []
    for key, value in table.items():
        dotted = f"{prefix}.{key}" if prefix else key
        is_domain = isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in _DOMAINS
        if (
            isinstance(value, Mapping)
            and not is_domain
            and all(isinstance(v, Mapping) for v in value.values())
            and value
        ):
            leaves.extend(_domain_leaves(value, dotted))
        else:
            leaves.append((dotted, value))
    return leaves
