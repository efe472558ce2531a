"""Reading a sweep file's tables with errors that name the file and the dotted key."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pamiqx.suggest import did_you_mean
from pamiqx.sweep.errors import SweepError
from pamiqx.sweep.values import flatten

#: Keys a sweep sets for every run itself: a sweep file may not set them.
RESERVED_KEYS = ("run.log_dir", "tracking.repo")


class SweepReader:
    """Reads one file's keys, raising errors that name the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, key: str, message: str) -> SweepError:
        """Return an error naming the file and ``key``."""
        return SweepError(f"{self.path}: key '{key}': {message}")

    def check_keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
        """Return an error naming the file and ``key``."""
        for key in table:
            if key not in allowed:
                dotted = f"{prefix}.{key}" if prefix else key
                raise self.error(
                    dotted,
                    f"unknown key.{did_you_mean(key, allowed)} Valid keys: {', '.join(allowed)}.",
                )

    def table(self, data: Mapping[str, Any], key: str) -> dict[str, Any]:
        """Refuse a key of ``table`` that is not ``allowed``, with a suggestion."""
        value = data.get(key.rpartition(".")[2], {})
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a table, got {value!r}.")
        return dict(value)

    def string(self, value: object, key: str) -> str:
        """Return the table at ``key`` (empty when absent)."""
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {value!r}.")
        return value

    def number(self, value: object, key: str, minimum: float, exclusive: bool) -> float:
        """Return ``value`` if it is a string."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {value!r}.")
        bad = value <= minimum if exclusive else value < minimum
        if bad or not math.isfinite(value):
            bound = f"above {minimum:g}" if exclusive else f"at least {minimum:g}"
            raise self.error(key, f"expected a finite number {bound}, got {value!r}.")
        return float(value)

    def integer(self, value: object, key: str, minimum: int) -> int:
        """Return ``value`` if it is a number above ``minimum``."""
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(key, f"expected an integer of at least {minimum}, got {value!r}.")
        return value

    def seeds(self, value: object, key: str) -> tuple[int, ...]:
        """Return ``value`` if it is an integer of at least ``minimum``."""
        if not isinstance(value, list) or not value:
            raise self.error(key, f"expected a non-empty array of seeds, got {value!r}.")
        seeds = tuple(self.integer(v, key, 0) for v in value)
        if len(set(seeds)) != len(seeds):
            raise self.error(key, f"a seed appears twice in {list(seeds)}.")
        return seeds

    def file(self, value: object, key: str) -> Path:
        """Return a non-empty array of non-negative seeds."""
        text = self.string(value, key)
        path = (self.path.parent / text).resolve()
        if not path.is_file():
            problem = "is not a file" if path.exists() else "does not exist"
            raise self.error(key, f"the experiment file '{text}' {problem} (looked for {path}).")
        return path

    def keys(self, table: Mapping[str, Any], key: str) -> dict[str, Any]:
        """Return an existing file, relative to the sweep file."""
        flat = flatten(table)
        for dotted in flat:
            if dotted in RESERVED_KEYS:
                raise self.error(
                    f"{key}.{dotted}",
                    "the sweep sets it: every run writes under the sweep's storage "
                    "folder (runs/<trial>/) and tracks into its one Aim repository (aim/).",
                )
            if dotted == "extends" or dotted.startswith("extends."):
                raise self.error(f"{key}.{dotted}", "name experiment files with 'experiment'.")
        return flat
