"""Dataclass values <-> plain JSON-able dicts, derived from the fields and their types.

Table state and payloads are dataclasses; writing their field lists out again by hand
in ``to_dict``/``from_dict`` lets the two drift. :func:`to_plain` and :func:`from_plain`
read the fields instead: nested dataclasses become objects, enums their values, and
loading checks every value against its annotation, so a damaged record fails with the
path of the bad field rather than later in arithmetic. The state of a security is
loaded and stored for every snapshot, so each class's plan is worked out once and the
path of a bad field is only spelled out when there is one.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import types
import typing
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")


class _Field(NamedTuple):
    """How one field is read and written."""

    name: str
    load: Callable[[Any], Any]  # raises ValueError without the field's path
    dump: Callable[[Any], Any] | None  # None: the value is already plain
    nested: type | None  # the dataclass of a nested object, for error paths


def to_plain(value: Any) -> dict[str, Any]:
    """The fields of a dataclass instance as a dict of JSON types (in field order)."""
    klass: type = type(value)
    names, dumps, get = _dumps(klass)
    return {n: v if d is None else d(v) for n, v, d in zip(names, get(value), dumps, strict=True)}


def from_plain(cls: type[T], data: object, where: str = "") -> T:
    """Build ``cls`` from what :func:`to_plain` wrote; ValueError naming the bad field."""
    klass: type = cls  # the caches key on the class
    if not isinstance(data, dict) and not isinstance(data, Mapping):
        raise ValueError(f"{where or cls.__name__}: expected an object, got {data!r}")
    if data.keys() != _names(klass):
        raise ValueError(_shape_problem(klass, data, where or cls.__name__))
    try:
        values = {name: load(data[name]) for name, load in _loads(klass)}
    except ValueError:
        raise ValueError(_field_problem(klass, data, where or cls.__name__)) from None
    try:
        return cls(**values)
    except ValueError as exc:  # the class's own checks (__post_init__)
        raise ValueError(f"{where or cls.__name__}: {exc}") from None


def _shape_problem(cls: type, data: Mapping[str, Any], where: str) -> str:
    missing = [f.name for f in _plan(cls) if f.name not in data]
    unknown = [k for k in data if k not in _names(cls)]
    return f"{where}: missing {missing or 'nothing'}, unknown {unknown or 'none'}"


def _field_problem(cls: type, data: Mapping[str, Any], where: str) -> str:
    """The first field that does not load, with its full path."""
    for f in _plan(cls):
        raw = data[f.name]
        try:
            if f.nested is not None and raw is not None:
                from_plain(f.nested, raw, f"{where}.{f.name}")
            else:
                f.load(raw)
        except ValueError as exc:
            return str(exc) if f.nested is not None else f"{where}.{f.name}: {exc}"
    return f"{where}: does not load"  # pragma: no cover - a loader failed, then did not


@functools.cache
def _names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in _plan(cls))


@functools.cache
def _dumps(
    cls: type,
) -> tuple[tuple[str, ...], tuple[Callable[[Any], Any] | None, ...], Callable[[Any], Any]]:
    """Field names, their converters, and one getter returning all their values."""
    plan = _plan(cls)
    names = tuple(f.name for f in plan)
    if len(names) > 1:
        get: Callable[[Any], Any] = operator.attrgetter(*names)
    else:  # attrgetter of one name returns the value itself, of none it fails
        get = lambda value: tuple(getattr(value, n) for n in names)  # noqa: E731
    return names, tuple(f.dump for f in plan), get


@functools.cache
def _loads(cls: type) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    return tuple((f.name, f.load) for f in _plan(cls))


@functools.cache
def _plan(cls: type) -> tuple[_Field, ...]:
    """How to read and write each constructor field of ``cls``."""
    hints = typing.get_type_hints(cls)
    return tuple(
        _field(f.name, hints[f.name], cls.__name__) for f in dataclasses.fields(cls) if f.init
    )


def _field(name: str, hint: Any, owner: str) -> _Field:
    """The plan of one field from its annotation: X | None, dataclass, enum or scalar."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(options) != 1 or len(typing.get_args(hint)) != 2:
            raise TypeError(f"{owner}.{name}: unsupported annotation {hint!r}")
        hint, optional = options[0], True
    nested = hint if dataclasses.is_dataclass(hint) and isinstance(hint, type) else None
    load: Callable[[Any], Any]
    dump: Callable[[Any], Any] | None = None
    if nested is not None:
        load, dump = functools.partial(from_plain, nested), to_plain
    elif isinstance(hint, type) and issubclass(hint, Enum):
        load, dump = _enum_loader(hint), _enum_value
    elif hint in (float, int, str, bool):
        load = _SCALARS[hint]
    else:
        raise TypeError(f"{owner}.{name}: unsupported annotation {hint!r}")
    if optional:
        load, dump = _or_none(load), None if dump is None else _or_none(dump)
    return _Field(name, load, dump, nested)


def _or_none(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _enum_loader(kind: type[Enum]) -> Callable[[Any], Enum]:
    members = kind._value2member_map_

    def load(raw: Any) -> Enum:
        try:
            return members[raw]
        except (KeyError, TypeError):  # not a value (or not hashable): the enum says why
            return kind(raw)

    return load


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _float(raw: object) -> float:
    if type(raw) is float:
        return raw
    if type(raw) is int:
        return float(raw)
    raise ValueError(f"expected float, got {raw!r}")


def _exactly(kind: type) -> Callable[[object], Any]:
    def load(raw: object) -> Any:
        # bool is an int subclass, and JSON true is not a count: match the type exactly.
        if type(raw) is kind or (kind is str and isinstance(raw, str)):
            return raw
        raise ValueError(f"expected {kind.__name__}, got {raw!r}")

    return load


_SCALARS: dict[type, Callable[[Any], Any]] = {
    float: _float,
    int: _exactly(int),
    str: _exactly(str),
    bool: _exactly(bool),
}
