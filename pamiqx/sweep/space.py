"""A variant's search space: the plugins' declarations and the tune file's, as Tune domains.

Each plugin table of the experiment (``curiosity``, ``models.<role>``)
contributes the ``search_space`` its ``Options`` class declares
(:mod:`pamiqx.api.search`), under the table's key (``curiosity.lr``); the tune
file's ``[tune.space]`` adds keys and wins over a plugin's declaration of the
same key. Every bound (each choice) is validated as an override of the
variant's experiment before anything starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pamiqx.api.errors import PamiqxError
from pamiqx.api.search import Choice, IntRange, LogUniform, SearchDomain, Uniform, search_space_of
from pamiqx.experiment import ResolvedExperiment, load_experiment
from pamiqx.plugins.manager import PluginManager
from pamiqx.sweep.errors import SweepError
from pamiqx.sweep.values import override

__all__ = ["plugin_spaces", "to_tune", "variant_space"]


def plugin_spaces(resolved: ResolvedExperiment) -> dict[str, tuple[SearchDomain, str]]:
    """Return the declared spaces of a run's curiosity and model plugins.

    Returns:
        Dotted experiment key to (range, the plugin that declared it).

    Raises:
        SweepError: A plugin's declaration is malformed.
    """
    tables = {
        "curiosity": resolved.curiosity,
        **{f"models.{r}": m for r, m in resolved.models.items()},
    }
    found: dict[str, tuple[SearchDomain, str]] = {}
    for table, plugin in tables.items():
        label = f"{plugin.entry.kind} plugin '{plugin.entry.name}' ({plugin.entry.distribution})"
        try:
            space = search_space_of(plugin.entry.plugin.Options)
        except TypeError as error:
            raise SweepError(f"{label}: its Options.search_space is invalid: {error}.") from None
        for option, domain in space.items():
            found[f"{table}.{option}"] = (domain, label)
    return found


def variant_space(
    path: Path,
    experiment: Path,
    overrides: Sequence[str],
    declared: dict[str, SearchDomain],
    use_plugins: bool,
    manager: PluginManager,
) -> dict[str, tuple[SearchDomain, str]]:
    """Return and check the search space of one variant.

    Args:
        path: The tune file (named in errors).
        experiment: The variant's experiment file.
        overrides: The variant's overrides.
        declared: ``[tune.space]`` of the tune file.
        use_plugins: Include the plugins' declared spaces.
        manager: The plugin registry.

    Returns:
        Dotted key to (range, where it was declared).

    Raises:
        SweepError: The space is empty, or a bound is not a valid value of its key.
    """
    resolved = load_experiment(experiment, overrides, manager)
    space = plugin_spaces(resolved) if use_plugins else {}
    space.update({k: (d, f"{path}: key 'tune.space.{k}'") for k, d in declared.items()})
    if not space:
        raise SweepError(
            f"{path}: key 'tune.space': nothing to search for {experiment.name}: declare ranges "
            "in [tune.space] (e.g. policy.lr = {{ loguniform = [1e-5, 1e-3] }})."
        )
    for key, (domain, where) in space.items():
        for value in domain.bounds():
            try:
                load_experiment(experiment, [*overrides, override(key, value)], manager)
            except PamiqxError as error:
                message = str(error).replace("command-line override", "search bound")
                raise SweepError(
                    f"{where}: {domain.describe()} includes {value!r}: {message}"
                ) from None
    return space


def to_tune(domain: SearchDomain) -> Any:
    """Return the Ray Tune domain of a declared range."""
    from ray import tune

    if isinstance(domain, Uniform):
        return tune.uniform(domain.low, domain.high)
    if isinstance(domain, LogUniform):
        return tune.loguniform(domain.low, domain.high)
    if isinstance(domain, IntRange):
        return tune.randint(domain.low, domain.high + 1)  # Tune's upper bound is exclusive
    assert isinstance(domain, Choice)
    return tune.choice(list(domain.values))
