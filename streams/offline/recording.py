"""Snapshots as JSON lines: the field names of capflow.v1.DistributionSnapshot, one per line.

``capflow record`` writes a topic to such a file and ``capflow replay`` publishes it
back, so a recorded day can be re-run through the pipeline (same event times, same
flows, same alert ids). The minute history the poller fetched goes with it: a line
``{"capital_flow": {...}}`` holds one capflow.v1.CapitalFlowSeries (its field names),
which replay publishes to the capital-flow topic. The flow processor folds a series in
before the first snapshot that names it, whatever order the lines come in.

Every field is written, zeros included. The two super amounts are optional (OpenD may
not send them): an absent one is written as ``null`` and read back as absent, so a
recording keeps "absent" distinct from 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO

import orjson
from google.protobuf import json_format

from streams.pb.capflow.v1.capital_flow_pb2 import CapitalFlowSeries
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot

Record = DistributionSnapshot | CapitalFlowSeries
SERIES_KEY = "capital_flow"  # the key of a line that holds a capital-flow series

_OPTIONAL_FIELDS: tuple[str, ...] = tuple(
    f.name for f in DistributionSnapshot.DESCRIPTOR.fields if f.has_presence
)


class RecordingError(ValueError):
    """A line of a recording is neither a snapshot nor a capital-flow series."""


def to_json_line(msg: Record) -> bytes:
    if isinstance(msg, CapitalFlowSeries):
        series = json_format.MessageToDict(msg, preserving_proto_field_name=True)
        return orjson.dumps({SERIES_KEY: series}) + b"\n"
    data = json_format.MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    for name in _OPTIONAL_FIELDS:
        data.setdefault(name, None)
    return orjson.dumps(data) + b"\n"


def from_json_line(line: bytes | str, where: str = "") -> Record:
    """A line as the record it holds: a snapshot, or a capital-flow series."""
    if SERIES_KEY.encode() in (line.encode() if isinstance(line, str) else line):
        series = _series(line, where)
        if series is not None:
            return series
    try:
        msg = json_format.Parse(line, DistributionSnapshot())
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{where}: not a DistributionSnapshot: {exc}") from exc
    if not msg.security or not msg.trading_day or msg.update_timestamp <= 0:
        raise RecordingError(f"{where}: snapshot needs security, trading_day and update_timestamp")
    return msg


def _series(line: bytes | str, where: str) -> CapitalFlowSeries | None:
    """The series of a ``{"capital_flow": ...}`` line; None for any other line."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or set(data) != {SERIES_KEY}:
        return None
    try:
        msg = json_format.ParseDict(data[SERIES_KEY], CapitalFlowSeries())
    except json_format.ParseError as exc:
        raise RecordingError(f"{where}: not a CapitalFlowSeries: {exc}") from exc
    if not msg.security or not msg.trading_day or msg.received_at_ms <= 0:
        raise RecordingError(
            f"{where}: capital flow needs security, trading_day and received_at_ms"
        )
    return msg


def read_recording(path: Path) -> Iterator[Record]:
    """The records of a JSON-lines file in order; blank lines are skipped."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield from_json_line(line, f"{path}:{number}")


def write_recording(out: IO[bytes], records: list[Record]) -> None:
    for msg in records:
        out.write(to_json_line(msg))
