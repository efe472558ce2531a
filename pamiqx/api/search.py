"""Search spaces a plugin declares for its options (read by ``pamiqx tune``).

A plugin's ``Options`` class may carry a ``search_space`` class variable that
maps option names to the ranges worth searching::

    @attrs.frozen
    class Options:
        search_space: ClassVar[SearchSpace] = {
            "lr": LogUniform(1e-5, 1e-3),
            "epochs": IntRange(1, 8),
            "feature_dim": Choice(64, 128, 256),
        }
        lr: float = 1e-4
        epochs: int = 4
        feature_dim: int = 128

attrs ignores ``ClassVar`` attributes, so the declaration is not an option.
The host checks that every name is an option of the class and samples values
inside the declared bounds; each sampled experiment is still validated by the
options class itself. ``docs/search-spaces.md`` explains how to choose ranges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

__all__ = [
    "Choice",
    "IntRange",
    "LogUniform",
    "SearchDomain",
    "SearchSpace",
    "Uniform",
    "describe_search_space",
    "search_space_of",
]


def _finite(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number, got {value!r}")


@attrs.frozen
class Uniform:
    """Real values drawn uniformly from ``[low, high]``."""

    kind: ClassVar[str] = "uniform"
    low: float = attrs.field(validator=_finite)
    high: float = attrs.field(validator=_finite)

    def __attrs_post_init__(self) -> None:
        """Check that the interval is not empty."""
        if not self.low < self.high:
            raise ValueError(f"uniform: low must be below high, got [{self.low}, {self.high}]")

    def bounds(self) -> list[Any]:
        """Return the values that delimit the space (each must be a valid option value)."""
        return [self.low, self.high]

    def describe(self) -> str:
        """Return the space as ``pamiqx list-plugins`` and the tune report show it."""
        return f"uniform({self.low:g}, {self.high:g})"


@attrs.frozen
class LogUniform:
    """Positive real values whose logarithm is uniform on ``[log low, log high]``."""

    kind: ClassVar[str] = "loguniform"
    low: float = attrs.field(validator=_finite)
    high: float = attrs.field(validator=_finite)

    def __attrs_post_init__(self) -> None:
        """Check that the interval is positive and not empty."""
        if not 0 < self.low < self.high:
            raise ValueError(f"loguniform: expected 0 < low < high, got [{self.low}, {self.high}]")

    def bounds(self) -> list[Any]:
        """Return the values that delimit the space (each must be a valid option value)."""
        return [self.low, self.high]

    def describe(self) -> str:
        """Return the space as ``pamiqx list-plugins`` and the tune report show it."""
        return f"loguniform({self.low:g}, {self.high:g})"


@attrs.frozen
class IntRange:
    """Integers drawn uniformly from ``low`` to ``high``, both included."""

    kind: ClassVar[str] = "int"
    low: int
    high: int

    def __attrs_post_init__(self) -> None:
        """Check the bounds are integers and the range is not empty."""
        for value in (self.low, self.high):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"int: bounds must be integers, got {value!r}")
        if not self.low < self.high:
            raise ValueError(f"int: low must be below high, got [{self.low}, {self.high}]")

    def bounds(self) -> list[Any]:
        """Return the values that delimit the space (each must be a valid option value)."""
        return [self.low, self.high]

    def describe(self) -> str:
        """Return the space as ``pamiqx list-plugins`` and the tune report show it."""
        return f"int({self.low}, {self.high})"


@attrs.frozen(init=False)
class Choice:
    """One of a few values (strings, numbers or booleans), each equally likely."""

    kind: ClassVar[str] = "choice"
    values: tuple[str | int | float | bool, ...]

    def __init__(self, *values: str | int | float | bool) -> None:
        """Keep the values; at least two, each a string, number or boolean."""
        if len(values) < 2:
            raise ValueError(f"choice: expected at least two values, got {list(values)!r}")
        for value in values:
            if not isinstance(value, str | int | float | bool):
                raise ValueError(f"choice: values must be strings, numbers or booleans: {value!r}")
        self.__attrs_init__(tuple(values))

    def bounds(self) -> list[Any]:
        """Return every value (each must be a valid option value)."""
        return list(self.values)

    def describe(self) -> str:
        """Return the space as ``pamiqx list-plugins`` and the tune report show it."""
        return "choice(" + ", ".join(repr(v) for v in self.values) + ")"


type SearchDomain = Uniform | LogUniform | IntRange | Choice
"""One option's range."""

type SearchSpace = Mapping[str, SearchDomain]
"""Option name to its range, as an ``Options`` class declares it in ``search_space``."""


def search_space_of(options_class: type[Any]) -> dict[str, SearchDomain]:
    """Return the search space an ``Options`` class declares (empty when none).

    Args:
        options_class: A plugin's ``Options`` class.

    Returns:
        Option name to range.

    Raises:
        TypeError: ``search_space`` is not a mapping of option names to
            :data:`SearchDomain` objects, or names something that is not an option.
    """
    declared = getattr(options_class, "search_space", None)
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        raise TypeError(f"search_space must be a mapping, got {type(declared).__name__}")
    fields = {f.name for f in attrs.fields(options_class)} if attrs.has(options_class) else set()
    space: dict[str, SearchDomain] = {}
    for name, domain in declared.items():
        if not isinstance(domain, Uniform | LogUniform | IntRange | Choice):
            raise TypeError(
                f"search_space['{name}'] must be Uniform, LogUniform, IntRange or Choice, "
                f"got {domain!r}"
            )
        if name not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise TypeError(
                f"search_space names '{name}', which is not an option (options: {known})"
            )
        space[str(name)] = domain
    return space


def describe_search_space(options: type[Any]) -> dict[str, Any]:
    """Describe an Options class's search space as JSON-ready data (``list-plugins --json``).

    Returns:
        Option name to ``kind``, ``range`` and ``bounds``; or ``{"error": why}`` when
        the declaration is invalid.
    """
    try:
        space = search_space_of(options)
    except TypeError as error:
        return {"error": str(error)}
    return {
        name: {"kind": domain.kind, "range": domain.describe(), "bounds": domain.bounds()}
        for name, domain in space.items()
    }
