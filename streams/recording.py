"""Snapshots as JSON lines: the field names of capflow.v1.DistributionSnapshot, one per line.

``capflow record`` writes a topic to such a file and ``capflow replay`` publishes it
back, so a recorded day can be re-run through the pipeline (same event times, same
flows, same alert ids).

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

from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot

_OPTIONAL_FIELDS: tuple[str, ...] = tuple(
    f.name for f in DistributionSnapshot.DESCRIPTOR.fields if f.has_presence
)


class RecordingError(ValueError):
    """A line of a recording is not a snapshot."""


def to_json_line(msg: DistributionSnapshot) -> bytes:
    data = json_format.MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    for name in _OPTIONAL_FIELDS:
        data.setdefault(name, None)
    return orjson.dumps(data) + b"\n"


def from_json_line(line: bytes | str, where: str = "") -> DistributionSnapshot:
    try:
        msg = json_format.Parse(line, DistributionSnapshot())
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{where}: not a DistributionSnapshot: {exc}") from exc
    if not msg.security or not msg.trading_day or msg.update_timestamp <= 0:
        raise RecordingError(f"{where}: snapshot needs security, trading_day and update_timestamp")
    return msg


def read_recording(path: Path) -> Iterator[DistributionSnapshot]:
    """Snapshots of a JSON-lines file in order; blank lines are skipped."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield from_json_line(line, f"{path}:{number}")


def write_recording(out: IO[bytes], snapshots: list[DistributionSnapshot]) -> None:
    for msg in snapshots:
        out.write(to_json_line(msg))
