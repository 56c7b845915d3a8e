"""Dataclass values <-> plain JSON-able dicts, derived from the fields and their types.

Table state and payloads are dataclasses; writing their field lists out again by hand
in ``to_dict``/``from_dict`` lets the two drift. :func:`to_plain` and :func:`from_plain`
read the fields instead: nested dataclasses become objects, enums their values, and
loading checks every value against its annotation, so a damaged record fails with the
path of the bad field rather than later in arithmetic.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

T = TypeVar("T")


def to_plain(value: Any) -> dict[str, Any]:
    """The fields of a dataclass instance as a dict of JSON types (in field order)."""
    return dataclasses.asdict(value, dict_factory=_plain_items)


def _plain_items(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: v.value if isinstance(v, Enum) else v for k, v in items}


def from_plain(cls: type[T], data: object, where: str = "") -> T:
    """Build ``cls`` from what :func:`to_plain` wrote; ValueError naming the bad field."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where or cls.__name__}: expected an object, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    missing = [n for n in names if n not in data]
    unknown = [k for k in data if k not in names]
    if missing or unknown:
        raise ValueError(
            f"{where or cls.__name__}: missing {missing or 'nothing'}, unknown {unknown or 'none'}"
        )
    prefix = f"{where}." if where else ""
    values = {n: _value(hints[n], data[n], f"{prefix}{n}") for n in names}
    try:
        return cls(**values)
    except ValueError as exc:  # the class's own checks (__post_init__)
        raise ValueError(f"{where or cls.__name__}: {exc}") from None


def _value(hint: Any, raw: object, where: str) -> Any:
    """``raw`` as a value of the annotated type (X | None, dataclass, enum, scalar)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw is None and len(options) < len(typing.get_args(hint)):
            return None
        if len(options) != 1:
            raise TypeError(f"{where}: unsupported annotation {hint!r}")
        hint = options[0]
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_plain(hint, raw, where)
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(raw)
        except ValueError:
            raise ValueError(f"{where}: {raw!r} is not a {hint.__name__}") from None
    return _scalar(hint, raw, where)


def _scalar(hint: Any, raw: object, where: str) -> Any:
    if hint is float and isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if hint is int and isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if hint in (str, bool) and isinstance(raw, hint):
        return raw
    if hint not in (float, int, str, bool):
        raise TypeError(f"{where}: unsupported annotation {hint!r}")
    raise ValueError(f"{where}: expected {hint.__name__}, got {raw!r}")
