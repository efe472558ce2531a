"""Entry-point discovery and the registry of named plugins.

Every distribution's ``pamiqx`` entry points are imported one by one; a module
that raises on import, or a hook that raises while registering, becomes a
:class:`LoadFailure` instead of stopping the host. Two distributions giving one
name are both kept; looking the name up is then an error naming both, and
``distribution:name`` picks one.

Environment variables:
    PAMIQX_PLUGINS: comma-separated distribution names; only these (and the host
        itself) are loaded, for reproducible runs.
    PAMIQX_TRACE_HOOKS: when set to 1, every hook call is traced to stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import attrs
import pluggy

from pamiqx.api import PLUGIN_KINDS, Plugin, PluginKind
from pamiqx.errors import PluginError
from pamiqx.markers import ENTRY_POINT_GROUP, PROJECT_NAME
from pamiqx.plugins import hookspecs
from pamiqx.suggest import did_you_mean

HOST_DISTRIBUTION = "pamiqx"
_REGISTRATION_HOOKS: dict[PluginKind, str] = {
    "environment": "pamiqx_register_environments",
    "model": "pamiqx_register_models",
    "curiosity": "pamiqx_register_curiosities",
}


@attrs.frozen
class PluginEntry:
    """A registered plugin and where it came from."""

    kind: PluginKind
    name: str
    distribution: str
    version: str
    plugin: type[Plugin]

    @property
    def qualified_name(self) -> str:
        """Return ``distribution:name``, which is unambiguous."""
        return f"{self.distribution}:{self.name}"


@attrs.frozen
class LoadFailure:
    """An entry point that could not be imported or registered."""

    distribution: str
    version: str
    entry_point: str
    reason: str


def _format_exception(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class PluginManager:
    """Loads the ``pamiqx`` entry points and answers plugin look-ups by name."""

    def __init__(self, only_distributions: Iterable[str] | None = None) -> None:
        """Create an empty manager; call :meth:`load_entry_points` to discover plugins.

        Args:
            only_distributions: Load only these distributions (plus the host).
                None reads ``PAMIQX_PLUGINS`` and loads everything when it is unset.
        """
        if only_distributions is None and os.environ.get("PAMIQX_PLUGINS"):
            only_distributions = os.environ["PAMIQX_PLUGINS"].split(",")
        self._only = (
            None
            if only_distributions is None
            else {_normalise(d) for d in only_distributions} | {HOST_DISTRIBUTION}
        )
        self.hooks = pluggy.PluginManager(PROJECT_NAME)
        self.hooks.add_hookspecs(hookspecs)
        if os.environ.get("PAMIQX_TRACE_HOOKS") == "1":
            self.hooks.trace.root.setwriter(sys.stderr.write)
            self.hooks.enable_tracing()
        self.entries: list[PluginEntry] = []
        self.failures: list[LoadFailure] = []
        self._distribution_of: dict[str, tuple[str, str]] = {}

    def load_entry_points(self) -> PluginManager:
        """Import every entry point of the ``pamiqx`` group and register its plugins.

        Returns:
            self, for chaining.
        """
        seen: set[tuple[str, str]] = set()
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            dist_name, version = _distribution_of(entry_point)
            key = (dist_name, entry_point.name)
            # An editable install can expose one distribution twice on sys.path.
            if key in seen or (self._only is not None and _normalise(dist_name) not in self._only):
                continue
            seen.add(key)
            try:
                module = entry_point.load()
            except BaseException as error:  # a plugin calling sys.exit() on import fails too
                if isinstance(error, KeyboardInterrupt):
                    raise
                self.failures.append(
                    LoadFailure(dist_name, version, entry_point.value, _format_exception(error))
                )
                continue
            self.register_module(module, dist_name, version, entry_point.value)
        return self

    def register_module(
        self, module: ModuleType | object, distribution: str, version: str, label: str
    ) -> None:
        """Register one hook-implementing module and collect the plugins it declares.

        Args:
            module: A module (or object) with ``pamiqx_*`` hook implementations.
            distribution: The distribution it came from.
            version: That distribution's version.
            label: How to name it in failures (the entry point's value).
        """
        plugin_name = f"{distribution}:{label}"
        try:
            self.hooks.register(module, name=plugin_name)
        except Exception as error:  # noqa: BLE001 - a bad hook signature is a load failure
            self.failures.append(
                LoadFailure(distribution, version, label, _format_exception(error))
            )
            return
        self._distribution_of[plugin_name] = (distribution, version)
        for kind, hook_name in _REGISTRATION_HOOKS.items():
            for impl in getattr(self.hooks.hook, hook_name).get_hookimpls():
                if impl.plugin is not module:
                    continue
                # Each implementation is called on its own so that one failing
                # plugin cannot hide the plugins of the others.
                try:
                    declared = impl.function() or []
                    new = [self._entry(kind, cls, distribution, version) for cls in declared]
                except Exception as error:  # noqa: BLE001 - one plugin's bug must not hide others
                    self.failures.append(
                        LoadFailure(distribution, version, label, _format_exception(error))
                    )
                    continue
                self.entries.extend(new)

    @staticmethod
    def _entry(kind: PluginKind, cls: object, distribution: str, version: str) -> PluginEntry:
        if not (isinstance(cls, type) and issubclass(cls, Plugin)):
            raise TypeError(f"{cls!r} is not a pamiqx plugin class (subclass of pamiqx.api.Plugin)")
        if getattr(cls, "kind", None) != kind:
            raise TypeError(
                f"{cls.__qualname__} has kind {getattr(cls, 'kind', None)!r}, expected {kind!r}"
            )
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name or ":" in name:
            raise TypeError(f"{cls.__qualname__}.name must be a non-empty string without ':'")
        if not attrs.has(cls.Options):
            raise TypeError(f"{cls.__qualname__}.Options must be an attrs class")
        return PluginEntry(kind, name, distribution, version, cls)

    def names(self, kind: PluginKind) -> list[str]:
        """Return the plugin names of one kind, sorted."""
        return sorted({e.name for e in self.entries if e.kind == kind})

    def lookup(self, kind: PluginKind, reference: str) -> PluginEntry:
        """Find a plugin by ``name`` or ``distribution:name``.

        Args:
            kind: The plugin kind.
            reference: ``name`` or ``distribution:name``.

        Returns:
            The single matching entry.

        Raises:
            PluginError: Unknown, ambiguous, or known only as a load failure.
        """
        dist, _, name = reference.rpartition(":")
        candidates = [
            e
            for e in self.entries
            if e.kind == kind
            and e.name == name
            and (not dist or _normalise(e.distribution) == _normalise(dist))
        ]
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            both = " and ".join(f"'{e.qualified_name}' ({e.version})" for e in candidates)
            raise PluginError(
                f"The {kind} plugin name '{name}' is provided by {both}. "
                f"Write one of them as 'distribution:name', e.g. plugin = "
                f'"{candidates[0].qualified_name}".'
            )
        message = f"Unknown {kind} plugin '{reference}'."
        failed = [
            f for f in self.failures if not dist or _normalise(f.distribution) == _normalise(dist)
        ]
        if failed:
            reasons = "; ".join(f"{f.distribution} ({f.entry_point}): {f.reason}" for f in failed)
            message += f" These plugin distributions failed to load and may provide it: {reasons}."
        suggestion = did_you_mean(name, self.names(kind))
        available = ", ".join(self.names(kind)) or "none"
        raise PluginError(f"{message}{suggestion} Installed {kind} plugins: {available}.")

    def call_lifecycle(self, hook_name: str, **kwargs: Any) -> list[str]:
        """Call a lifecycle hook on every plugin, each isolated from the others' errors.

        Args:
            hook_name: One of the ``pamiqx_experiment_*`` / ``pamiqx_*_saved`` hooks.
            **kwargs: The hook's arguments.

        Returns:
            One line per implementation that raised (the run goes on without it).
        """
        errors: list[str] = []
        caller: Callable[..., Any] = getattr(self.hooks.hook, hook_name)
        for impl in caller.get_hookimpls():  # type: ignore[attr-defined]
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as error:  # noqa: BLE001 - an observer must not end the run
                errors.append(f"{impl.plugin_name}.{hook_name}: {_format_exception(error)}")
        return errors


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _distribution_of(entry_point: EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    if dist is None:
        return "unknown", "unknown"
    return dist.metadata["Name"] or dist.name, dist.version


def load_plugins(only_distributions: Iterable[str] | None = None) -> PluginManager:
    """Discover and register every installed plugin.

    Args:
        only_distributions: Restrict loading to these distributions (plus the host).

    Returns:
        A loaded :class:`PluginManager`.
    """
    return PluginManager(only_distributions).load_entry_points()


__all__ = ["PLUGIN_KINDS", "LoadFailure", "PluginEntry", "PluginManager", "load_plugins"]
