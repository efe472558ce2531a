"""Experiment keys as ``KEY.PATH=VALUE`` overrides: flattening tables, writing values as TOML.

A sweep hands each trial the same overrides ``pamiqx run FILE KEY=VALUE...``
takes, so that a trial can be rerun by hand and is validated by the same code.
Tables are flattened to their leaves, ``plugin`` first: an override that
switches a table's plugin clears the table, as ``extends`` replaces it, and the
keys after it fill the new plugin's table.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from typing import Any

import tomli_w

from pamiqx.experiment import parse_override

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested tables to dotted keys, each table's ``plugin`` key first.

    Args:
        table: Experiment keys as TOML tables (``{"run": {"max_steps": 5}}``).
        prefix: The dotted key of ``table`` itself.

    Returns:
        Dotted key to leaf value (arrays are leaves), in override order.
    """
    items = sorted(table.items(), key=lambda item: item[0] != "plugin")
    flat: dict[str, Any] = {}
    for key, value in items:
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, dotted))
        else:
            flat[dotted] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turn dotted keys back into nested tables (the inverse of :func:`flatten`)."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = nested
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


def toml_value(value: Any) -> str:
    """Write one value as inline TOML, as an override's right-hand side.

    Raises:
        TypeError: A value TOML cannot hold (None, an object).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return tomli_w.dumps({"v": value}).partition("=")[2].strip()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    raise TypeError(f"{value!r} ({type(value).__name__}) is not a TOML value")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_value(key)


def override(key: str, value: Any) -> str:
    """Return ``KEY=VALUE``, which :func:`pamiqx.experiment.parse_override` reads as ``value``."""
    text = f"{key}={toml_value(value)}"
    parsed_key, parsed = parse_override(text)
    assert ".".join(parsed_key) == key and _same(parsed, value), (text, parsed)
    return text


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
