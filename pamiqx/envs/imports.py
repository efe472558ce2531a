"""Import modules that an experiment file names, from installed packages only.

An experiment file is data: running one must not run a ``evil.py`` that happens
to sit in the current directory. Python puts the current directory on
``sys.path`` for ``python -m pamiqx`` (and ``''`` in an interactive session), so
a module an experiment names (``import_modules``, a wrapper's ``module:Class``)
is imported with those entries removed for the duration of the import.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from pamiqx.api.errors import PluginError

MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _is_local(entry: str, cwd: Path | None) -> bool:
    if entry in ("", "."):
        return True
    if cwd is None:
        return False
    try:
        return Path(entry).resolve() == cwd
    except (OSError, RuntimeError, ValueError):
        return False


@contextmanager
def without_local_paths() -> Iterator[None]:
    """Remove ``''``, ``'.'`` and the current directory from ``sys.path`` for a while."""
    try:
        cwd: Path | None = Path(os.getcwd()).resolve()
    except OSError:  # the current directory was deleted
        cwd = None
    saved = list(sys.path)
    sys.path[:] = [entry for entry in saved if not _is_local(entry, cwd)]
    try:
        yield
    finally:
        sys.path[:] = saved


def _local_file(top: str) -> str | None:
    """Return ``top.py`` or ``top/`` when it sits in the current directory (for the message)."""
    for candidate in (f"{top}.py", top):
        if os.path.exists(candidate):
            return candidate
    return None


def import_installed(name: str, where: str) -> ModuleType:
    """Import the module ``name`` from installed packages, never from the current directory.

    Args:
        name: A dotted module name.
        where: What named the module, for messages (e.g. ``gymnasium: import_modules``).

    Returns:
        The imported module.

    Raises:
        PluginError: The name is not a module name, the module is not installed, or
            importing it raised.
    """
    if not MODULE_NAME.fullmatch(name):
        raise PluginError(f"{where}: '{name}' is not a module name (e.g. 'minigrid').")
    try:
        with without_local_paths():
            return importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing = error.name or name
        if name != missing and not name.startswith(missing + "."):
            raise PluginError(
                f"{where}: importing '{name}' failed: it needs the module '{missing}', "
                "which is not installed."
            ) from None
        local = _local_file(name.partition(".")[0])
        hint = (
            f" pamiqx does not import '{local}' from the current directory: install it as a "
            "package (e.g. `pip install -e .` with a pyproject.toml) to use it."
            if local
            else ""
        )
        raise PluginError(
            f"{where}: module '{name}' cannot be imported: it is not installed.{hint}"
        ) from None
    except Exception as error:  # noqa: BLE001 - the module's own code raised while importing
        raise PluginError(
            f"{where}: importing '{name}' failed: {type(error).__name__}: {error}"
        ) from None
