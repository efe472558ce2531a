"""Experiment files as raw data: TOML, ``extends`` and command-line overrides.

Steps 1 and 2 of loading (:mod:`pamiqx.experiment.loader` does step 3): read a
file and the files it ``extends`` (relative paths, merged depth-first: the
extending file wins, tables merge, a table that switches ``plugin`` replaces the
inherited one instead of mixing options of two plugins), then apply
``a.b.c=VALUE`` overrides, remembering which file or override set each key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pamiqx.api.errors import ExperimentError
from pamiqx.options import KeySources

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
        # utf-8-sig: a byte-order mark (some Windows editors write one) is not TOML's business.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ExperimentError(f"{path}: experiment file not found{where}.") from None
    except IsADirectoryError:
        raise ExperimentError(f"{path}: is a folder, not an experiment file{where}.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ExperimentError(f"{path}: cannot read the experiment file{where}: {error}.") from None
    try:
        return _parse_toml(text)
    except ValueError as error:
        raise ExperimentError(f"{path}: not valid TOML{where}: {error}.") from None


def _parse_toml(text: str) -> dict[str, Any]:
    """Parse TOML; every way the text can be wrong is a ``ValueError``.

    tomllib raises ``ValueError`` (not its ``TOMLDecodeError``) for an integer of
    more than 4300 digits, and ``RecursionError`` for arrays nested thousands deep.
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise
    except ValueError:  # int() refuses more than 4300 digits
        raise ValueError("an integer has thousands of digits (integers are 64-bit)") from None
    except RecursionError:
        raise ValueError("arrays or tables nested thousands deep") from None


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
            problem = "is not a file" if parent_path.exists() else "does not exist"
            raise ExperimentError(
                f"{path}: key 'extends': the file '{parent}' {problem} (looked for {parent_path})."
            )
        parent_data = _load_with_extends(parent_path, sources, (*chain, resolved))
        merged = merge_tables(merged, parent_data)
    _record_sources(data, str(path), "", sources, merged)
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


def _record_sources(
    data: Mapping[str, Any],
    source: str,
    prefix: str,
    sources: KeySources,
    base: Mapping[str, Any],
) -> None:
    """Record ``source`` for every key of ``data``, merged over the inherited ``base``."""
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        old = base.get(key)
        if isinstance(value, dict):
            inherited = isinstance(old, dict) and old.get("plugin") == value.get("plugin")
            if "plugin" in value and not inherited:
                # The table replaces the inherited one (merge_tables): all of it is this file's.
                sources.set(dotted, source)
            _record_sources(value, source, dotted, sources, old if isinstance(old, dict) else {})
        else:
            sources.set(dotted, source)


# --- step 2: overrides -------------------------------------------------------------------

_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_BARE_WORD = re.compile(r"[A-Za-z_./~][A-Za-z0-9_.:/+~-]*")


def _clip(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def _override(text: str) -> str:
    """Name an override in messages (a 5000-digit value is not quoted in full)."""
    return f"command-line override '{_clip(text)}'"


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
            f"{_override(text)}: expected KEY.PATH=VALUE, e.g. run.max_steps=5000."
        )
    raw = raw.strip()
    if not raw:
        raise ExperimentError(
            f"{_override(text)}: the value is empty; write {key}='\"\"' for an empty string."
        )
    try:
        value = _parse_toml(f"v = {raw}")["v"]
    except ValueError as error:
        if not isinstance(error, tomllib.TOMLDecodeError):
            raise ExperimentError(f"{_override(text)}: {error}.") from None
        if not _BARE_WORD.fullmatch(raw):
            raise ExperimentError(
                f"{_override(text)}: the value '{_clip(raw)}' is not a TOML value "
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
                raise ExperimentError(f"{_override(text)}: '{prefix}' is a value, not a table.")
            node = child
        if path[-1] == "plugin" and node.get("plugin", value) != value:
            # As with extends: switching plugin drops the options of the old one.
            node.clear()
            sources.set(".".join(path[:-1]), f"{_override(text)}")
        node[path[-1]] = value
        sources.set(".".join(path), f"{_override(text)}")
    return result
