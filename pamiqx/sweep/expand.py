"""Expanding a sweep file into trials, and validating every one before anything starts.

Each trial is one ordinary ``pamiqx run FILE KEY=VALUE...``: its experiment
file (the variant's, or the sweep's base) and its overrides, in this order: the
sweep's ``[set]``, the variant's keys, the grid values, the command line's
overrides, the name (``<sweep>-<variant>`` when the sweep has variants and
nothing else names the run) and last where it writes: ``run.log_dir`` (the
trial's own folder under ``<storage>/runs/``) and ``tracking.repo`` (the
sweep's one Aim repository, ``<storage>/aim``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from pamiqx.api.errors import PamiqxError
from pamiqx.experiment import ResolvedExperiment, load_experiment
from pamiqx.plugins.manager import PluginManager
from pamiqx.sweep.errors import SweepError
from pamiqx.sweep.spec import SweepFile
from pamiqx.sweep.values import override, toml_value

__all__ = [
    "PlannedRun",
    "TrialSpec",
    "expand",
    "is_realtime",
    "plan",
    "storage_dir",
    "validate",
]

RUNS_DIR = "runs"
AIM_DIR = "aim"
REALTIME_RESOURCE = "realtime_world"
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


@attrs.frozen
class PlannedRun:
    """One run of the sweep before validation.

    Attributes:
        key: The trial's unique, folder-safe name (``rnd_seed=0``).
        experiment: The experiment file.
        overrides: Every override of the run, as ``pamiqx run`` takes them.
        variant: The variant's name (None when the sweep has none).
        axes: The grid values of this run, by dotted key.
    """

    key: str
    experiment: Path
    overrides: tuple[str, ...]
    variant: str | None
    axes: dict[str, Any]


@attrs.frozen
class TrialSpec:
    """A validated run: what a trial runs, and what the driver shows about it.

    Attributes:
        key: The trial's unique, folder-safe name.
        experiment: The experiment file (absolute).
        overrides: Every override of the run.
        name: The resolved experiment's name (its run directories' folder).
        variant: The variant's name, or None.
        curiosity: The curiosity plugin of the run.
        seed: The run's seed.
        max_steps: The run's ``run.max_steps``.
        log_root: The trial's ``run.log_dir``.
        realtime: The environment is real-time (the trial asks for ``realtime_world``).
        workdir: Where the run starts (the folder ``pamiqx sweep`` was started in), so
            that paths in experiment options mean what they mean to ``pamiqx run``.
    """

    key: str
    experiment: str
    overrides: tuple[str, ...]
    name: str
    variant: str | None
    curiosity: str
    seed: int
    max_steps: int
    log_root: str
    realtime: bool
    workdir: str

    def to_config(self) -> dict[str, Any]:
        """Return the spec as plain data (a Ray Tune trial's config)."""
        data = attrs.asdict(self)
        data["overrides"] = list(self.overrides)
        return data

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> TrialSpec:
        """Rebuild a spec from :meth:`to_config`'s data."""
        return cls(**{**data, "overrides": tuple(data["overrides"])})

    def command(self) -> str:
        """Return the ``pamiqx run`` command line of this run (to rerun it by hand)."""
        import shlex

        return shlex.join(["pamiqx", "run", self.experiment, *self.overrides, "--resume", "latest"])


def storage_dir(sweep: SweepFile, option: Path | None) -> Path:
    """Return the sweep's storage folder, absolute.

    ``--storage``, else the file's ``storage``, else ``logs/sweeps/<name>``;
    relative to the working directory, as ``run.log_dir`` is.
    """
    chosen = option or (Path(sweep.storage) if sweep.storage else Path("logs/sweeps") / sweep.name)
    return chosen.expanduser().absolute()


def _label(key: str, value: Any) -> str:
    shown = value if isinstance(value, str) else toml_value(value)
    return f"{key}={shown}"


def _folder_name(parts: Sequence[str]) -> str:
    return _UNSAFE.sub("_", "_".join(parts))[:120].strip("._") or "run"


def expand(sweep: SweepFile, storage: Path, extra: Sequence[str] = ()) -> list[PlannedRun]:
    """Expand a sweep into its runs: every variant times the product of the grid axes.

    Args:
        sweep: The parsed sweep file.
        storage: The sweep's storage folder (absolute).
        extra: Overrides from the command line, for every run.

    Returns:
        The runs, variants outermost, in file order.

    Raises:
        SweepError: Two runs would share a folder.
    """
    variants = sweep.variants or (None,)
    axes = [[(key, value) for value in values] for key, values in sweep.grid]
    runs: list[PlannedRun] = []
    for variant in variants:
        for combo in itertools.product(*axes):
            parts = ([variant.name] if variant else []) + [_label(k, v) for k, v in combo]
            key = _folder_name(parts) if parts else sweep.name
            keys: dict[str, Any] = dict(sweep.common)
            if variant is not None:
                keys.update(variant.keys)
            keys.update(dict(combo))
            texts = [override(k, v) for k, v in keys.items()]
            texts.extend(extra)
            named = "name" in keys or any(t.partition("=")[0].strip() == "name" for t in extra)
            if variant is not None and not named:
                texts.append(override("name", f"{sweep.name}-{variant.name}"))
            log_root = storage / RUNS_DIR / key
            texts.append(override("run.log_dir", str(log_root)))
            texts.append(override("tracking.repo", str(storage / AIM_DIR)))
            experiment = (variant.experiment if variant else None) or sweep.experiment
            assert experiment is not None  # load_sweep_file checked it
            runs.append(
                PlannedRun(
                    key, experiment, tuple(texts), variant.name if variant else None, dict(combo)
                )
            )
    seen: dict[str, PlannedRun] = {}
    for run in runs:
        if run.key in seen:
            raise SweepError(
                f"{sweep.path}: two runs would share the folder '{run.key}' "
                f"(grid values {seen[run.key].axes} and {run.axes}); make the values differ "
                "in letters or digits."
            )
        seen[run.key] = run
    return runs


def is_realtime(resolved: ResolvedExperiment) -> bool:
    """Return True when a run's world is real-time (at most one per machine).

    A run is real-time when ``run.mode = "realtime"``, or when its environment
    plugin says so with a ``realtime = True`` class attribute.
    """
    if resolved.experiment.run.mode == "realtime":
        return True
    return getattr(resolved.environment.entry.plugin, "realtime", False) is True


def validate(
    sweep: SweepFile, runs: Sequence[PlannedRun], manager: PluginManager
) -> list[TrialSpec]:
    """Load every run's experiment as ``pamiqx run`` would, before anything starts.

    Args:
        sweep: The sweep file (named in errors).
        runs: Its expanded runs.
        manager: The loaded plugin registry.

    Returns:
        One validated trial per run.

    Raises:
        SweepError: A run's experiment is invalid (the message names the sweep
            file, the trial, the experiment file and the key).
    """
    trials = []
    for run in runs:
        try:
            resolved = load_experiment(run.experiment, run.overrides, manager)
        except PamiqxError as error:
            # The overrides come from the sweep file, not from a command line.
            message = str(error).replace("command-line override", "sweep key")
            raise SweepError(
                f"{sweep.path}: trial '{run.key}' (experiment {run.experiment}): {message}"
            ) from None
        exp = resolved.experiment
        log_root = next(
            t.partition("=")[2] for t in reversed(run.overrides) if t.startswith("run.log_dir=")
        )
        trials.append(
            TrialSpec(
                key=run.key,
                experiment=str(run.experiment),
                overrides=run.overrides,
                name=exp.name,
                variant=run.variant,
                curiosity=resolved.curiosity.entry.name,
                seed=exp.seed,
                max_steps=exp.run.max_steps,
                log_root=exp.run.log_dir or log_root,
                realtime=is_realtime(resolved),
                workdir=str(Path.cwd()),
            )
        )
    return trials


def plan(
    sweep: SweepFile, storage: Path, manager: PluginManager, extra: Sequence[str] = ()
) -> list[TrialSpec]:
    """Expand and validate a sweep (:func:`expand`, then :func:`validate`)."""
    return validate(sweep, expand(sweep, storage, extra), manager)
