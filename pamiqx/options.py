"""Turn TOML tables into attrs option classes, with errors that name the key.

A small structurer on purpose: every error must name the file that set the
key, the dotted key and what was expected, and suggest the closest valid key,
which generic converters do not do. Supported field types: ``bool``, ``int``,
``float``, ``str``, ``Literal[...]``, ``X | None`` (None = key absent),
``tuple[T, ...]``, ``tuple[A, B]``, ``list[T]``, ``dict[str, T]``, nested
attrs classes and ``Any``.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from pamiqx.api.errors import ExperimentError
from pamiqx.suggest import did_you_mean


class KeySources:
    """Remembers which file (or override) set each dotted key, for error messages."""

    def __init__(self, default: str) -> None:
        """Create a record whose unknown keys are attributed to ``default``."""
        self.default = default
        self._sources: dict[str, str] = {}

    def set(self, key: str, source: str) -> None:
        """Record that ``source`` set ``key`` (and everything below it)."""
        for known in [k for k in self._sources if k.startswith(key + ".")]:
            del self._sources[known]
        self._sources[key] = source

    def source_of(self, key: str) -> str:
        """Return the source of ``key``, of its closest recorded parent table, or of its keys.

        A table that no source set as a whole (``foo.bar=1`` creates ``foo``) is
        blamed on whoever set the keys inside it.
        """
        parts = key.split(".")
        for i in range(len(parts), 0, -1):
            found = self._sources.get(".".join(parts[:i]))
            if found is not None:
                return found
        inside = [source for known, source in self._sources.items() if known.startswith(key + ".")]
        return inside[-1] if inside else self.default

    def copy(self) -> KeySources:
        """Return an independent copy."""
        other = KeySources(self.default)
        other._sources = dict(self._sources)
        return other


def _describe(value: object) -> str:
    kinds = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    kind = kinds.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind})"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is bool:
        return "a boolean (true or false)"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a finite number"
    if tp is str:
        return "a string"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (tuple, list):
        args = typing.get_args(tp)
        inner = _type_name(args[0]) if args else "anything"
        return f"an array of {inner.removeprefix('an ').removeprefix('a ')}s"
    if origin is dict or attrs.has(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


class Structurer:
    """Builds attrs instances from TOML data, raising :class:`ExperimentError`."""

    def __init__(self, sources: KeySources) -> None:
        """Create a structurer that names files through ``sources``."""
        self.sources = sources

    def error(self, key: str, problem: str) -> ExperimentError:
        """Return an error naming the source and dotted key of a problem."""
        where = f"key '{key}'" if key else "the top level"
        return ExperimentError(f"{self.sources.source_of(key)}: {where}: {problem}")

    def structure(self, cls: type[Any], data: object, key: str) -> Any:
        """Build an instance of the attrs class ``cls`` from the table ``data`` at ``key``."""
        if not isinstance(data, Mapping):
            raise self.error(key, f"expected a table, got {_describe(data)}.")
        fields = attrs.fields(attrs.resolve_types(cls))
        by_name = {f.name: f for f in fields}
        for name in data:
            if name not in by_name:
                valid = ", ".join(by_name) or "none"
                raise self.error(
                    _join(key, name),
                    f"unknown key.{did_you_mean(name, by_name, key)} Valid keys here: {valid}.",
                )
        kwargs: dict[str, Any] = {}
        for field in fields:
            if field.name in data:
                kwargs[field.name] = self.convert(
                    field.type, data[field.name], _join(key, field.name)
                )
            elif field.default is attrs.NOTHING:
                raise self.error(
                    _join(key, field.name),
                    f"missing required key; expected {_type_name(field.type)}.",
                )
        for field in fields:
            self._validate_field(field, kwargs, key)
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as error:
            raise self.error(key, f"invalid value: {error}") from None

    def _validate_field(
        self, field: attrs.Attribute[Any], kwargs: dict[str, Any], key: str
    ) -> None:
        """Run one field's validator first, so that an error names the field's own key."""
        if field.validator is None or field.name not in kwargs:
            return
        try:
            field.validator(None, field, kwargs[field.name])
        except (ValueError, TypeError) as error:
            raise self.error(_join(key, field.name), f"invalid value: {error}") from None
        except AttributeError:
            pass  # a validator that needs the instance runs again when it is built

    def convert(self, tp: Any, value: object, key: str) -> Any:
        """Check and convert one value to the type ``tp``."""
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if tp is Any or tp is object:
            return value
        if attrs.has(tp):
            return self.structure(tp, value, key)
        if origin in (types.UnionType, typing.Union):
            members = [a for a in args if a is not type(None)]
            problems: list[ExperimentError] = []
            for member in members:
                try:
                    return self.convert(member, value, key)
                except ExperimentError as error:
                    problems.append(error)
            if len(members) == 1:
                raise problems[0]
            raise self._expected(tp, value, key)
        if origin is typing.Literal:
            if value in args and type(value) in {type(a) for a in args}:
                return value
            hint = did_you_mean(value, [str(a) for a in args]) if isinstance(value, str) else ""
            raise self.error(key, f"expected {_type_name(tp)}, got {_describe(value)}.{hint}")
        scalar = _SCALARS.get(tp)
        if scalar is not None:
            if not scalar[0](value):
                raise self._expected(tp, value, key)
            if tp is int and not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
                # TOML integers are 64-bit; past that, torch and numpy overflow mid-run.
                raise self.error(
                    key,
                    f"the integer {value} is out of range: integers are 64-bit, from "
                    f"{INT64_MIN} to {INT64_MAX}.",
                )
            return scalar[1](value)
        if origin in (tuple, list):
            if not isinstance(value, list | tuple):
                raise self._expected(tp, value, key)
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                if len(value) != len(args):
                    raise self.error(
                        key, f"expected an array of {len(args)} items, got {_describe(value)}."
                    )
                items = [
                    self.convert(a, v, f"{key}[{i}]")
                    for i, (a, v) in enumerate(zip(args, value, strict=True))
                ]
            else:
                item_type = args[0] if args else Any
                items = [self.convert(item_type, v, f"{key}[{i}]") for i, v in enumerate(value)]
            return tuple(items) if origin is tuple else items
        if origin is dict:
            if not isinstance(value, Mapping):
                raise self._expected(tp, value, key)
            value_type = args[1] if len(args) == 2 else Any
            return {
                str(k): self.convert(value_type, v, _join(key, str(k))) for k, v in value.items()
            }
        raise TypeError(f"unsupported option type {tp!r} at {key}")

    def _expected(self, tp: Any, value: object, key: str) -> ExperimentError:
        return self.error(key, f"expected {_type_name(tp)}, got {_describe(value)}.")


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_SCALARS: dict[Any, tuple[Callable[[object], bool], Callable[[Any], Any]]] = {
    bool: (lambda v: isinstance(v, bool), bool),
    int: (_is_int, int),
    # inf and nan are TOML floats, but no option means them: a learning rate of inf
    # passes every range check and turns the weights to nan.
    float: (lambda v: _is_int(v) or (isinstance(v, float) and math.isfinite(v)), float),
    str: (lambda v: isinstance(v, str), str),
}


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def unstructure(instance: object) -> dict[str, Any]:
    """Return an attrs instance as TOML-compatible data (tuples as arrays, None left out)."""
    data: dict[str, Any] = attrs.asdict(instance, recurse=True)  # type: ignore[arg-type]
    cleaned: dict[str, Any] = _drop_none(data)
    return cleaned


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_drop_none(v) for v in value]
    return value


def option_keys(cls: type[Any]) -> list[str]:
    """Return the field names of an attrs options class."""
    return [f.name for f in attrs.fields(cls)]
