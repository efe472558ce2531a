"""Entry-point discovery and the registry of named plugins.

Every distribution's ``pamiqx`` entry points are imported one by one; a
distribution written for another plugin API (its ``pamiqx`` requirement
excludes this pamiqx), a module that raises on import, or a hook that raises
while registering becomes a :class:`LoadFailure` instead of stopping the host.
Two distributions giving one name are both kept; looking the name up is then an
error naming both, and ``distribution:name`` picks one.

Every hook is called through pluggy's hook relay (registration hooks through a
caller restricted to the module being registered), so pluggy's tracing,
ordering and wrappers apply to all of them.

Environment variables:
    PAMIQX_PLUGINS: comma-separated distribution names; only these (and the host
        itself) are loaded, for reproducible runs.
    PAMIQX_TRACE_HOOKS: when set to 1, every hook call is traced to stderr.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable
from importlib.metadata import Distribution, EntryPoint, entry_points
from types import ModuleType
from typing import Any

import attrs
import pluggy
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from pamiqx import __version__
from pamiqx.api import API_VERSION, PLUGIN_KINDS, Plugin, PluginKind
from pamiqx.api import hooks as hookspecs
from pamiqx.api.errors import PluginError
from pamiqx.api.hooks import ENTRY_POINT_GROUP, PROJECT_NAME
from pamiqx.suggest import did_you_mean

HOST_DISTRIBUTION = "pamiqx"
_REGISTRATION_HOOKS: dict[PluginKind, str] = {
    "environment": "pamiqx_register_environments",
    "representation": "pamiqx_register_representations",
    "model": "pamiqx_register_models",
    "curiosity": "pamiqx_register_curiosities",
}
_LIFECYCLE_HOOKS = (
    "pamiqx_experiment_start",
    "pamiqx_experiment_end",
    "pamiqx_metrics_emitted",
    "pamiqx_checkpoint_saved",
)


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
        # Errors of isolated lifecycle implementations, per calling thread.
        self._hook_errors = threading.local()

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
            mismatch = _api_mismatch(entry_point.dist, dist_name)
            if mismatch is not None:  # not imported: its imports may not exist here
                self.failures.append(LoadFailure(dist_name, version, entry_point.value, mismatch))
                continue
            try:
                module = entry_point.load()
            except BaseException as error:  # a plugin calling sys.exit() on import fails too
                if isinstance(error, KeyboardInterrupt):
                    raise
                reason = _format_exception(error) + _internal_import_hint(error, entry_point.module)
                self.failures.append(LoadFailure(dist_name, version, entry_point.value, reason))
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
        others = [p for p in self.hooks.get_plugins() if p is not module]
        for kind, hook_name in _REGISTRATION_HOOKS.items():
            if not _implements(self.hooks, hook_name, module):
                continue
            # Through the relay, restricted to this module: one plugin's failure is
            # its own distribution's load failure and cannot hide the others' plugins.
            caller = self.hooks.subset_hook_caller(hook_name, remove_plugins=others)
            try:
                declared = [cls for result in caller() for cls in (result or [])]
                new = [self._entry(kind, cls, distribution, version) for cls in declared]
            except Exception as error:  # noqa: BLE001 - one plugin's bug must not hide others
                self.failures.append(
                    LoadFailure(distribution, version, label, _format_exception(error))
                )
                continue
            self.entries.extend(new)
        for hook_name in _LIFECYCLE_HOOKS:
            for impl in getattr(self.hooks.hook, hook_name).get_hookimpls():
                if impl.plugin is module and not (impl.hookwrapper or impl.wrapper):
                    impl.function = self._isolated(impl.function, f"{plugin_name}.{hook_name}")

    def _isolated(self, function: Any, label: str) -> Any:
        """Wrap a lifecycle implementation so that its exception is reported, not raised."""

        def call(*args: Any) -> Any:
            try:
                return function(*args)
            except Exception as error:  # noqa: BLE001 - an observer must not end the run
                self._errors().append(f"{label}: {_format_exception(error)}")
                return None

        return call

    def _errors(self) -> list[str]:
        errors: list[str] | None = getattr(self._hook_errors, "errors", None)
        if errors is None:
            errors = self._hook_errors.errors = []
        return errors

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
        """Call a lifecycle hook through the relay, each implementation isolated from the others.

        Args:
            hook_name: One of the ``pamiqx_experiment_*`` / ``pamiqx_*_saved`` hooks.
            **kwargs: The hook's arguments.

        Returns:
            One line per implementation that raised (the run goes on without it).
        """
        errors = self._errors()
        errors.clear()
        try:
            getattr(self.hooks.hook, hook_name)(**kwargs)
        except Exception as error:  # noqa: BLE001 - a failing hook wrapper, reported likewise
            errors.append(f"{hook_name}: {_format_exception(error)}")
        reported = list(errors)
        errors.clear()
        return reported


def _implements(hooks: pluggy.PluginManager, hook_name: str, module: object) -> bool:
    return any(impl.plugin is module for impl in getattr(hooks.hook, hook_name).get_hookimpls())


def _api_mismatch(dist: Distribution | None, dist_name: str) -> str | None:
    """Return why a distribution's ``pamiqx`` requirement excludes this pamiqx, or None."""
    if dist is None or _normalise(dist_name) == HOST_DISTRIBUTION:
        return None
    try:
        here = Version(__version__)
    except InvalidVersion:  # a source tree without metadata: nothing to compare
        return None
    for line in dist.requires or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if _normalise(requirement.name) != HOST_DISTRIBUTION:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        if not requirement.specifier.contains(here, prereleases=True):
            return (
                f"written for pamiqx{requirement.specifier}, but this is pamiqx {here} "
                f"(plugin API {API_VERSION}); install a release of {dist_name} made for "
                f"pamiqx {API_VERSION}"
            )
    return None


def _internal_import_hint(error: BaseException, own_module: str) -> str:
    """Explain an import of a pamiqx module that is not the plugin API."""
    name = getattr(error, "name", None)
    if not isinstance(error, ImportError) or not name or not name.startswith("pamiqx."):
        return ""
    if own_module == name or own_module.startswith(name + "."):
        return ""  # the entry point's own module is missing (a stale install)
    if name == "pamiqx.api" or name.startswith("pamiqx.api."):
        return f" (the plugin needs a name that plugin API {API_VERSION} does not have)"
    return (
        f" (plugins may import only pamiqx.api, plugin API {API_VERSION}; "
        f"'{name}' is not part of it)"
    )


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
