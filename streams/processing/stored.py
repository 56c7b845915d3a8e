"""Dataclass values <-> plain JSON-able dicts, derived from the fields and their types.

Table state and payloads are dataclasses; writing their field lists out again by hand
in ``to_dict``/``from_dict`` lets the two drift. :func:`to_plain` and :func:`from_plain`
read the fields instead: nested dataclasses become objects, enums their values, rows
(NamedTuples of floats, such as the eight amounts) lists of numbers, and sequences
(``list[X]``, ``tuple[X, ...]``, ``deque[X]``) lists of their items; loading checks
every value against its annotation, so a damaged record fails with the
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
from collections import deque
from collections.abc import Callable, Mapping
from enum import Enum
from itertools import chain
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
    names, loads, positional = _loads(klass)
    try:
        values = list(map(operator.call, loads, map(data.__getitem__, names)))
    except ValueError:
        raise ValueError(_field_problem(klass, data, where or cls.__name__)) from None
    try:
        return cls(*values) if positional else cls(**dict(zip(names, values, strict=True)))
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
def _loads(cls: type) -> tuple[tuple[str, ...], tuple[Callable[[Any], Any], ...], bool]:
    """Field names, their loaders, and whether the constructor takes them in order."""
    plan = _plan(cls)
    positional = not any(f.kw_only is True for f in dataclasses.fields(cls) if f.init)
    return tuple(f.name for f in plan), tuple(f.load for f in plan), positional


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
    elif _is_row(hint):
        load, dump = _row_loader(hint), list
    elif typing.get_origin(hint) in _SEQUENCES:
        load, dump = _sequence(hint, f"{owner}.{name}")
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


_SEQUENCES: tuple[type, ...] = (list, tuple, deque)


def _is_row(hint: Any) -> bool:
    """A NamedTuple whose fields are all floats (stored as a list of numbers)."""
    if not (isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields")):
        return False
    return all(h is float for h in typing.get_type_hints(hint).values())


def _row_loader(row: type) -> Callable[[Any], Any]:
    width = len(row._fields)  # type: ignore[attr-defined]
    new = tuple.__new__  # once the row is checked: skips the generated __new__ (hot path)

    def load(raw: Any) -> Any:
        if type(raw) is list and len(raw) == width and {*map(type, raw)} <= _FLOAT:
            return new(row, raw)  # the common case: what to_plain wrote, read by orjson
        if not isinstance(raw, list) or len(raw) != width:
            raise ValueError(f"expected a list of {width} numbers, got {raw!r}")
        return row(*map(_float, raw))

    return load


def _sequence(hint: Any, where: str) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """Loader and dumper of ``list[X]``, ``tuple[X, ...]`` or ``deque[X]``."""
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:
        args = args[:1]
    if len(args) != 1:
        raise TypeError(f"{where}: unsupported annotation {hint!r}")
    kind: Callable[[Any], Any] = typing.get_origin(hint)
    item = _field("item", args[0], where)
    load_item, dump_item = item.load, item.dump

    rows = _is_row(args[0])  # the history of a state: its rows are checked in one go
    width = len(args[0]._fields) if rows else 0
    make_row = functools.partial(tuple.__new__, args[0])

    def load(raw: Any) -> Any:
        if not isinstance(raw, list):
            raise ValueError(f"expected a list, got {raw!r}")
        if rows and _plain_rows(raw, width):
            return kind(map(make_row, raw))
        try:
            return kind(map(load_item, raw))
        except ValueError:
            for i, value in enumerate(raw):  # the first bad item, by its index
                try:
                    load_item(value)
                except ValueError as exc:
                    raise ValueError(f"item {i}: {exc}") from None
            raise  # pragma: no cover - an item failed, then did not

    if dump_item is None:
        return load, list
    dump_one = dump_item
    return load, lambda values: [dump_one(v) for v in values]


_FLOAT = {float}


def _plain_rows(raw: list[Any], width: int) -> bool:
    """Whether ``raw`` is a list of lists of ``width`` floats each (what orjson reads)."""
    return (
        {*map(type, raw)} <= _LIST
        and {*map(len, raw)} <= {width}
        and {*map(type, chain.from_iterable(raw))} <= _FLOAT
    )


_LIST = {list}
