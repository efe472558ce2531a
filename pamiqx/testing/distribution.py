"""Checks that a plugin distribution loads, registers and declares usable plugins."""

from __future__ import annotations

import attrs

from pamiqx.plugins.manager import PluginEntry, PluginManager


def check_plugin_distribution(distribution: str) -> list[PluginEntry]:
    """Assert that a distribution's plugins load and register cleanly.

    Checks that the distribution has ``pamiqx`` entry points, that each imports
    and registers without error, that it declares at least one plugin, and that
    every plugin has a name, a docstring and default-constructible options (or
    options whose required keys are documented by attrs).

    Args:
        distribution: The distribution name, e.g. ``"pamiqx-rnd"``.

    Returns:
        The distribution's registered plugins.

    Raises:
        AssertionError: With every problem found.
    """
    manager = PluginManager(only_distributions=[distribution]).load_entry_points()
    norm = distribution.lower().replace("_", "-")
    entries = [e for e in manager.entries if e.distribution.lower().replace("_", "-") == norm]
    failures = [f for f in manager.failures if f.distribution.lower().replace("_", "-") == norm]
    problems = [f"entry point {f.entry_point} failed: {f.reason}" for f in failures]
    if not entries and not failures:
        problems.append(f"{distribution} has no pamiqx entry points (is it installed?)")
    for entry in entries:
        cls = entry.plugin
        if not cls.summary():
            problems.append(f"{entry.kind} plugin '{entry.name}' has no docstring")
        required = [f.name for f in attrs.fields(cls.Options) if f.default is attrs.NOTHING]
        if not required:
            try:
                cls.Options()
            except Exception as error:  # noqa: BLE001 - reported as a contract problem
                problems.append(f"'{entry.name}' default options do not validate: {error}")
    assert not problems, f"{distribution}: " + "; ".join(problems)
    return entries
