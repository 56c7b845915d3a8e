"""What the archive holds per topic: the dataset's columns, derived from the records.

Columns are not typed out here. Snapshot columns are the fields of the protobuf
record ``capflow.v1.DistributionSnapshot``; flow and alert columns are the keys of
the payloads that ``flow_record`` and ``alert_event`` build, found by building one
from a sample value, with nested objects flattened (``net.super`` -> ``net_super``,
the alert's ``data.r_w`` -> ``r_w`` and its CloudEvents attributes ``ce_*``). A field
added to a record is therefore a column of the archive without a change here, and
files written before it are still read (their rows have it as NULL).

Every row also names where it came from in Kafka (``kafka_partition``,
``kafka_offset``, ``kafka_timestamp_ms``). ``market`` and ``trading_day`` are the
hive partition directories, not columns inside the files. Pure: no I/O.

A new topic is a new :class:`Dataset` in ``DATASETS``: its directory name, the setting
naming its topic, its columns (``proto_columns`` or ``json_columns`` of a sample), its
event-time column and its decoder; ``capflow archive`` then needs a flag for it.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any, NamedTuple

from google.protobuf.descriptor import FieldDescriptor

from streams.domain.market import MARKETS
from streams.domain.snapshot_record import RECORD_FIELDS, record_fields
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pipeline.processor import DecodeError, SecurityProcessor
from streams.processing.events import alert_event, flow_record, parse_alert, parse_flow
from streams.processing.thresholds import ThresholdConfig

PARTITION_KEYS: tuple[str, ...] = ("market", "trading_day")  # directories, in this order
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BadRecord(ValueError):
    """A record that cannot be archived (it does not decode, or a value has the wrong type)."""


@dataclass(frozen=True)
class Column:
    """One column: its name in the files, its DuckDB (and Parquet) type, and where the
    value sits in the topic's record (``()`` for the Kafka provenance columns)."""

    name: str
    type: str
    path: tuple[str, ...]


# Where each row came from; filled from the Kafka record, not from its value.
PROVENANCE: tuple[Column, ...] = (
    Column("kafka_partition", "INTEGER", ()),
    Column("kafka_offset", "BIGINT", ()),
    Column("kafka_timestamp_ms", "BIGINT", ()),
)

_INT_RANGE = {"INTEGER": 2**31, "BIGINT": 2**63}
# The Python types a column of each type takes (exact types: a bool is no number here).
_PY_TYPES: dict[str, frozenset[type]] = {
    "VARCHAR": frozenset({str}),
    "BOOLEAN": frozenset({bool}),
    "DOUBLE": frozenset({float, int}),
    "FLOAT": frozenset({float, int}),
    "INTEGER": frozenset({int}),
    "BIGINT": frozenset({int}),
}


class _Check(NamedTuple):
    """How one column's value is found and checked (worked out once per dataset)."""

    name: str
    path: tuple[str, ...]
    types: frozenset[type]
    limit: int  # integers: |value| bound; 0: none

    def problem(self, value: Any) -> str | None:
        """Why ``value`` cannot be stored in the column, or None when it can (NULL can)."""
        if value is None:
            return None
        if type(value) in self.types and (not self.limit or -self.limit <= value < self.limit):
            return None
        return f"{'.'.join(self.path)}={value!r} is not a {_type_name(self.types, self.limit)}"


def _type_name(types: frozenset[type], limit: int) -> str:
    for name, kinds in _PY_TYPES.items():
        if kinds == types and _INT_RANGE.get(name, 0) == limit:
            return name
    return "/".join(sorted(t.__name__ for t in types))


@dataclass(frozen=True)
class Dataset:
    """One archived topic: its directory, the setting naming the topic, its columns.

    ``decode(key, value)`` turns a Kafka record into the topic's record (a dict, nested
    as on the topic) or raises BadRecord; ``columns`` are that record's values in order,
    partition keys included; ``time`` is the event-time column the files are sorted by.
    """

    name: str
    topic_setting: str  # the field of TopicSettings naming its topic
    columns: tuple[Column, ...]
    time: str
    decode: Callable[[bytes | None, bytes | None], dict[str, Any]]
    _checks: tuple[_Check, ...] = field(init=False, repr=False, compare=False)
    _paths: frozenset[tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        checks = tuple(
            _Check(c.name, c.path, _PY_TYPES[c.type], _INT_RANGE.get(c.type, 0))
            for c in self.columns
        )
        object.__setattr__(self, "_checks", checks)
        object.__setattr__(self, "_paths", frozenset(c.path for c in self.columns))

    @property
    def file_columns(self) -> tuple[Column, ...]:
        """The columns inside each file: the record's, less the partition keys, then provenance."""
        return (*(c for c in self.columns if c.name not in PARTITION_KEYS), *PROVENANCE)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def row(
        self, record: Mapping[str, Any], unknown: set[tuple[str, ...]] | None = None
    ) -> dict[str, Any]:
        """The flat row of a record; BadRecord if a value does not fit its column.

        Keys of the record that no column holds (a newer producer's fields) are added
        to ``unknown`` when given, so the caller can say so once.
        """
        row: dict[str, Any] = {}
        for check in self._checks:
            path = check.path
            value = record.get(path[0]) if len(path) == 1 else _lookup(record, path)
            if value is not None and check.problem(value) is not None:
                raise BadRecord(check.problem(value))
            row[check.name] = value
        check_partition(row.get("market"), row.get("trading_day"))
        if unknown is not None:
            unknown.update(_paths(record) - self._paths)
        return row

    def kafka_row(
        self,
        key: bytes | None,
        value: bytes | None,
        where: tuple[int, int, int],
        unknown: set[tuple[str, ...]] | None = None,
    ) -> dict[str, Any]:
        """The row of one Kafka record; ``where`` is its (partition, offset, timestamp_ms).
        BadRecord if it does not decode or does not fit the columns."""
        row = self.row(self.decode(key, value), unknown)
        for column, number in zip(PROVENANCE, where, strict=True):
            row[column.name] = number
        return row

    def record(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The topic's record of a row read back (columns missing from old files are None)."""
        out: dict[str, Any] = {}
        for column in self.columns:
            node = out
            for key in column.path[:-1]:
                node = node.setdefault(key, {})
            node[column.path[-1]] = row.get(column.name)
        return out


def check_partition(market: Any, trading_day: Any) -> None:
    """A known market and a real yyyy-MM-dd day: they become directory names."""
    if market not in MARKETS:
        raise BadRecord(f"market {market!r} is not a known market")
    if not isinstance(trading_day, str) or not _DAY.match(trading_day):
        raise BadRecord(f"trading_day {trading_day!r} is not yyyy-MM-dd")
    try:
        date.fromisoformat(trading_day)
    except ValueError:
        raise BadRecord(f"trading_day {trading_day!r} is not a real date") from None


def _lookup(record: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = record
    for key in path:
        if type(node) is not dict:
            return None
        node = node.get(key)
    return node


def _paths(record: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The path of every leaf value of a nested record."""
    out: set[tuple[str, ...]] = set()
    for key, value in record.items():
        if type(value) is dict:
            out |= _paths(value, (*prefix, key))
        else:
            out.add((*prefix, key))
    return out


# -- columns from the records ---------------------------------------------------------------

_PROTO_TYPES: dict[int, str] = {
    FieldDescriptor.TYPE_DOUBLE: "DOUBLE",
    FieldDescriptor.TYPE_FLOAT: "FLOAT",
    FieldDescriptor.TYPE_INT32: "INTEGER",
    FieldDescriptor.TYPE_SINT32: "INTEGER",
    FieldDescriptor.TYPE_INT64: "BIGINT",
    FieldDescriptor.TYPE_SINT64: "BIGINT",
    FieldDescriptor.TYPE_UINT32: "BIGINT",
    # Signed: Spark and Trino read no unsigned 64-bit Parquet integer; counters stay < 2^63.
    FieldDescriptor.TYPE_UINT64: "BIGINT",
    FieldDescriptor.TYPE_BOOL: "BOOLEAN",
    FieldDescriptor.TYPE_STRING: "VARCHAR",
}


def proto_columns(fields: Iterable[Any]) -> tuple[Column, ...]:
    """One column per scalar field of a protobuf record, named and ordered as in the .proto."""
    columns = []
    for f in fields:
        if f.type not in _PROTO_TYPES or f.is_repeated:
            raise TypeError(f"field {f.name}: only scalar fields can be archived")
        columns.append(Column(f.name, _PROTO_TYPES[f.type], (f.name,)))
    return tuple(columns)


def json_columns(
    sample: Mapping[str, Any], name: Callable[[tuple[str, ...]], str]
) -> tuple[Column, ...]:
    """Columns of a JSON record from one sample of it, nested objects flattened by ``name``."""
    columns: list[Column] = []

    def walk(node: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for key, value in node.items():
            path = (*prefix, key)
            if isinstance(value, Mapping):
                walk(value, path)
            elif isinstance(value, bool):
                columns.append(Column(name(path), "BOOLEAN", path))
            elif isinstance(value, int):
                columns.append(Column(name(path), "BIGINT", path))
            elif isinstance(value, float):
                columns.append(Column(name(path), "DOUBLE", path))
            elif isinstance(value, str):
                columns.append(Column(name(path), "VARCHAR", path))
            else:
                raise TypeError(f"{'.'.join(path)}: cannot type {value!r} (give the sample one)")

    walk(sample, ())
    return tuple(columns)


_SAMPLE_SCALARS: dict[Any, Any] = {float: 1.5, int: 1, str: "HK", bool: False}


def sample(hint: Any) -> Any:
    """A value of an annotation (never None): dataclasses filled field by field."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if isinstance(hint, type) and issubclass(hint, Enum):
        return next(iter(hint))
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = typing.get_type_hints(hint)
        return hint(**{f.name: sample(hints[f.name]) for f in dataclasses.fields(hint) if f.init})
    return _SAMPLE_SCALARS[hint]


def sample_call(build: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """What a payload builder returns for sample arguments (those without a default), so
    a parameter or field added to it changes the columns, not this module."""
    hints = typing.get_type_hints(build)
    arguments = {
        name: sample(hints[name])
        for name, parameter in inspect.signature(build).parameters.items()
        if parameter.default is inspect.Parameter.empty
    }
    return build(**arguments)


# -- the datasets ---------------------------------------------------------------------------

_SNAPSHOT_DECODER = SecurityProcessor(ThresholdConfig())


def decode_snapshot(key: bytes | None, value: bytes | None) -> dict[str, Any]:
    """A snapshot record as the worker decodes it (what it dead-letters is a BadRecord)."""
    try:
        _SNAPSHOT_DECODER.decode(key, value)
    except DecodeError as exc:
        raise BadRecord(str(exc)) from None
    return record_fields(DistributionSnapshot.FromString(value or b""))


def _json_decoder(parse: Callable[[bytes], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def decode(key: bytes | None, value: bytes | None) -> dict[str, Any]:
        if value is None:
            raise BadRecord("empty record value (tombstone)")
        try:
            return parse(value)
        except ValueError as exc:  # orjson's JSONDecodeError is one too
            raise BadRecord(str(exc)) from None

    return decode


def _alert_column(path: tuple[str, ...]) -> str:
    """``data.x`` -> ``x``; the CloudEvents attributes -> ``ce_<name>``."""
    return "_".join(path[1:]) if path[0] == "data" else "ce_" + "_".join(path)


SNAPSHOTS = Dataset(
    "snapshots", "distribution", proto_columns(RECORD_FIELDS), "update_timestamp",
    decode_snapshot,
)  # fmt: skip
FLOWS = Dataset(
    "flows",
    "flow",
    json_columns(sample_call(flow_record), "_".join),
    "event_ts",
    _json_decoder(parse_flow),
)
ALERTS = Dataset(
    "alerts",
    "alerts",
    json_columns(sample_call(alert_event), _alert_column),
    "event_ts",
    _json_decoder(parse_alert),
)
DATASETS: dict[str, Dataset] = {d.name: d for d in (SNAPSHOTS, FLOWS, ALERTS)}
