"""The Parquet archive without Kafka: columns, names, durable writes, reading back.

Files are real Parquet written by DuckDB and read back by DuckDB and, independently,
by pyarrow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pyarrow.dataset as pads
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from streams.archive.datasets import (
    ALERTS,
    FLOWS,
    PARTITION_KEYS,
    SNAPSHOTS,
    BadRecord,
    Dataset,
    json_columns,
    proto_columns,
    sample_call,
)
from streams.archive.layout import ArchiveError, day_dir, file_name, scan, tmp_path
from streams.archive.query import DayRange, count_rows, read_records, read_rows
from streams.archive.writer import ArchiveWriter, Batch
from streams.devtools.archive import archive_records, write_records
from streams.domain.snapshot_record import record_fields, record_from_fields
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.processing.detector import Regime
from streams.processing.events import alert_payload, flow_payload, flow_record
from streams.processing.flow import FlowPoint, FlowState, Snapshot
from tests.integration.harness import make_alert
from tests.unit.test_recording import snapshot

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
T0 = 1_717_378_200.0  # 2024-06-03 09:30:00 HKT


def records_of(msgs: list[DistributionSnapshot]) -> list[tuple[bytes, bytes]]:
    return [(m.security.encode(), m.SerializeToString()) for m in msgs]


def absent_super(i: int, security: str = "HK.00700") -> DistributionSnapshot:
    msg = snapshot(i, security)
    msg.ClearField("capital_in_super")
    msg.ClearField("capital_out_super")
    return msg


def flows_of_a_day(n: int = 12) -> list[bytes]:
    flow = FlowState(window=300)
    out = []
    for i in range(n):
        snap = Snapshot(
            "HK.00700", "HK", "2024-06-03", T0 + 30 * i,
            0.0, 1e6 * i, 5e5 * i, 5e5 * i, 0.0, 2e5 * i, 5e5 * i, 5e5 * i,
        )  # fmt: skip
        point = flow.update(snap)
        assert point is not None
        out.append(flow_payload(point, "INFLOW", 1.5e6))
    return out


# -- columns ------------------------------------------------------------------------------


def test_snapshot_columns_are_the_fields_of_the_record_in_order() -> None:
    assert SNAPSHOTS.column_names == tuple(f.name for f in DistributionSnapshot.DESCRIPTOR.fields)
    types = {c.name: c.type for c in SNAPSHOTS.columns}
    assert types["capital_in_super"] == "DOUBLE" and types["qot_market"] == "INTEGER"
    assert types["received_at_ms"] == "BIGINT" and types["poll_seq"] == "BIGINT"
    files = [c.name for c in SNAPSHOTS.file_columns]
    assert "market" not in files and "trading_day" not in files  # they are directories
    assert files[-3:] == ["kafka_partition", "kafka_offset", "kafka_timestamp_ms"]


def _schema_columns(
    node: dict[str, Any], prefix: tuple[str, ...] = ()
) -> dict[tuple[str, ...], str]:
    """(path, DuckDB type) of every leaf of a JSON Schema object."""
    out: dict[tuple[str, ...], str] = {}
    for key, spec in node["properties"].items():
        path = (*prefix, key)
        if spec.get("type") == "object":
            out |= _schema_columns(spec, path)
        else:
            kind = spec.get("type", "string")  # const / enum of strings
            if isinstance(kind, list):  # nullable: ["number", "null"]
                (kind,) = [k for k in kind if k != "null"]
            out[path] = {
                "number": "DOUBLE",
                "integer": "BIGINT",
                "string": "VARCHAR",
                "boolean": "BOOLEAN",
            }[kind]
    return out


@pytest.mark.parametrize(
    ("dataset", "schema"), [(FLOWS, "flow.v1.schema.json"), (ALERTS, "alert.v1.schema.json")]
)
def test_json_columns_match_the_published_schema(dataset: Dataset, schema: str) -> None:
    """Derived from the payload builders, the columns are the schema's fields, typed alike."""
    expected = _schema_columns(json.loads((SCHEMAS / schema).read_text()))
    assert {c.path: c.type for c in dataset.columns} == expected


def test_a_field_added_to_the_proto_is_a_column_and_old_files_still_read(tmp_path: Path) -> None:
    """A field added later (here `venue`): new files have the column, old ones read NULL."""
    proto = descriptor_pb2.FileDescriptorProto()
    DistributionSnapshot.DESCRIPTOR.file.CopyToProto(proto)
    proto.name = "capflow/v1/snapshot_with_venue.proto"
    proto.package = "capflow.v1.test"
    proto.message_type[0].field.add(
        name="venue", number=99, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    )
    pool = descriptor_pool.DescriptorPool()
    newer = message_factory.GetMessageClass(
        pool.Add(proto).message_types_by_name["DistributionSnapshot"]  # type: ignore[attr-defined]
    )
    columns = proto_columns(newer.DESCRIPTOR.fields)
    assert columns[-1].name == "venue" and columns[-1].type == "VARCHAR"

    def decode(key: bytes | None, value: bytes | None) -> dict[str, Any]:
        msg = newer.FromString(value or b"")
        return {c.name: getattr(msg, c.name) for c in columns} | {
            "capital_in_super": None,
            "capital_out_super": None,
        }

    v2 = Dataset("snapshots", "distribution", columns, "update_timestamp", decode)
    old = archive_records(tmp_path, SNAPSHOTS, records_of([snapshot(1)]), partition=0)
    new_msg = newer.FromString(snapshot(2).SerializeToString())
    new_msg.venue = "SEHK"
    new = archive_records(tmp_path, v2, [(b"HK.00700", new_msg.SerializeToString())], partition=1)
    assert len(old) == len(new) == 1
    rows = list(read_rows(tmp_path, v2, DayRange(), ["HK.00700"]))
    assert [r["venue"] for r in rows] == [None, "SEHK"]
    rows = list(read_rows(tmp_path, SNAPSHOTS, DayRange(), ["HK.00700"]))  # the older reader
    assert [record_from_fields(r).capital_out_small for r in rows] == [43.0, 44.0]


def test_a_parameter_added_to_a_payload_builder_is_sampled() -> None:
    """Builders are called with samples of every parameter without a default."""

    def build(
        point: FlowPoint, regime: Regime | str, threshold: float, baseline_ts: float | None
    ) -> dict[str, Any]:
        return flow_record(point, regime, threshold) | {"baseline_ts": baseline_ts}

    columns = {c.name: c.type for c in json_columns(sample_call(build), "_".join)}
    assert columns["baseline_ts"] == "DOUBLE" and columns["regime"] == "VARCHAR"


def test_a_field_added_to_a_json_record_is_a_column() -> None:
    sample = orjson.loads(flows_of_a_day(1)[0]) | {"venue": "XHKG", "venue_rank": 1.5}
    sample["baseline_ts"] = 1.5  # the sample types each column: null has no type
    columns = {c.name: c.type for c in json_columns(sample, "_".join)}
    assert columns["venue"] == "VARCHAR" and columns["venue_rank"] == "DOUBLE"
    assert set(FLOWS.column_names) < set(columns)


# -- rows ---------------------------------------------------------------------------------


def test_records_that_cannot_be_archived_are_bad_records() -> None:
    good = snapshot(1)
    with pytest.raises(BadRecord, match="DistributionSnapshot"):
        SNAPSHOTS.kafka_row(b"HK.00700", b"\xff\xff", (0, 0, 0))
    with pytest.raises(BadRecord, match="does not match"):
        SNAPSHOTS.kafka_row(b"HK.00005", good.SerializeToString(), (0, 0, 0))
    flow = orjson.loads(flows_of_a_day(1)[0])
    with pytest.raises(BadRecord, match="large_net='big' is not a DOUBLE"):
        FLOWS.kafka_row(b"HK.00700", orjson.dumps(flow | {"large_net": "big"}), (0, 0, 0))
    with pytest.raises(BadRecord, match="market 'XX'"):
        FLOWS.kafka_row(b"HK.00700", orjson.dumps(flow | {"market": "XX"}), (0, 0, 0))
    with pytest.raises(BadRecord, match="not a real date"):
        FLOWS.kafka_row(b"HK.00700", orjson.dumps(flow | {"trading_day": "2024-02-30"}), (0, 0, 0))
    with pytest.raises(BadRecord, match="tombstone"):
        ALERTS.kafka_row(b"HK.00700", None, (0, 0, 0))
    unknown: set[tuple[str, ...]] = set()
    row = FLOWS.kafka_row(b"k", orjson.dumps(flow | {"venue": "XHKG"}), (2, 7, 9), unknown)
    assert unknown == {("venue",)}
    assert (row["kafka_partition"], row["kafka_offset"], row["kafka_timestamp_ms"]) == (2, 7, 9)


def test_snapshots_round_trip_with_absent_super_amounts(tmp_path: Path) -> None:
    msgs = [snapshot(i) for i in range(5)] + [absent_super(i, "HK.00005") for i in range(5, 9)]
    archive_records(tmp_path, SNAPSHOTS, records_of(msgs), per_file=4)
    rows = list(read_rows(tmp_path, SNAPSHOTS, DayRange(), None))
    assert sorted(record_from_fields(r).SerializeToString() for r in rows) == sorted(
        m.SerializeToString() for m in msgs
    )
    assert [r["capital_in_super"] for r in rows if r["security"] == "HK.00005"] == [None] * 4
    assert all(record_fields(record_from_fields(r)) == {k: r[k] for k in SNAPSHOTS.column_names}
               for r in rows)  # fmt: skip
    assert count_rows(tmp_path, SNAPSHOTS, DayRange(), ["HK.00005"]) == 4


def test_flows_and_alerts_read_back_as_the_topic_published_them(tmp_path: Path) -> None:
    flows = flows_of_a_day()
    alerts = [alert_payload(make_alert("HK.00700", m)) for m in (5, 70, 200)]
    archive_records(tmp_path, FLOWS, [(b"HK.00700", v) for v in flows], per_file=5)
    archive_records(tmp_path, ALERTS, [(b"HK.00700", v) for v in alerts])
    back = read_records(tmp_path, FLOWS, DayRange("2024-06-03", "2024-06-03"), ["HK.00700"])
    assert [orjson.dumps(r) for r in back] == flows
    back = read_records(tmp_path, ALERTS, DayRange(), ["HK.00700"])
    assert [orjson.dumps(r) for r in back] == alerts


def test_pyarrow_reads_the_same_rows(tmp_path: Path) -> None:
    msgs = [snapshot(i, sec) for i in range(6) for sec in ("HK.00700", "HK.00005")]
    archive_records(tmp_path, SNAPSHOTS, records_of(msgs), per_file=5)
    table = pads.dataset(tmp_path / "snapshots", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(msgs)
    arrow = sorted(zip(table["security"].to_pylist(), table["capital_out_small"].to_pylist(),
                       table["trading_day"].to_pylist(), strict=True))  # fmt: skip
    duck = sorted((r["security"], r["capital_out_small"], r["trading_day"])
                  for r in read_rows(tmp_path, SNAPSHOTS, DayRange(), None))  # fmt: skip
    assert [(s, v, str(d)) for s, v, d in arrow] == duck
    assert table.schema.field("poll_seq").type == "int64"


# -- writing ------------------------------------------------------------------------------


def test_writing_a_range_again_replaces_its_files(tmp_path: Path) -> None:
    msgs = [snapshot(i) for i in range(10)]
    writer = ArchiveWriter(tmp_path)
    try:
        first = write_records(writer, SNAPSHOTS, "t", 0, records_of(msgs), per_file=4)
        again = write_records(writer, SNAPSHOTS, "t", 0, records_of(msgs), per_file=4)
    finally:
        writer.close()
    assert [f.path for f in first] == [f.path for f in again]
    assert [f.path.name for f in first] == [
        "t-p0-0-3.parquet",
        "t-p0-4-7.parquet",
        "t-p0-8-9.parquet",
    ]
    assert count_rows(tmp_path, SNAPSHOTS, DayRange(), None) == 10
    assert [p.name for p in tmp_path.iterdir()] == ["snapshots"]  # no scratch left


def test_one_range_over_two_days_and_markets_is_one_file_each(tmp_path: Path) -> None:
    us = DistributionSnapshot(
        security="US.AAPL", market="US", qot_market=11, code="AAPL", capital_in_big=1.0,
        update_time="2024-06-03 09:30:00", update_timestamp=1717421400.0,
        trading_day="2024-06-03",
    )  # fmt: skip
    next_day = snapshot(0)
    next_day.update_timestamp += 86_400
    next_day.trading_day = "2024-06-04"
    files = archive_records(tmp_path, SNAPSHOTS, records_of([snapshot(0), us, next_day]))
    assert sorted((f.market, f.trading_day, f.first, f.last) for f in files) == [
        ("HK", "2024-06-03", 0, 2), ("HK", "2024-06-04", 0, 2), ("US", "2024-06-03", 0, 2),
    ]  # fmt: skip
    (us_row,) = read_rows(tmp_path, SNAPSHOTS, DayRange(), ["US.AAPL"])
    assert us_row["market"] == "US"
    days = DayRange("2024-06-03", None)
    assert [r["trading_day"] for r in read_rows(tmp_path, SNAPSHOTS, days, ["HK.00700"])] == [
        "2024-06-03", "2024-06-04",
    ]  # fmt: skip


def test_a_batch_of_skipped_records_writes_nothing(tmp_path: Path) -> None:
    batch = Batch(SNAPSHOTS, "t", 0)
    batch.take(5, None)
    writer = ArchiveWriter(tmp_path)
    try:
        assert writer.write(batch, 5, 5) == []
    finally:
        writer.close()
    assert (batch.first, batch.last, batch.records, batch.rows) == (5, 5, 1, 0)


# -- what DIR may hold ---------------------------------------------------------------------


def test_scan_finds_the_files_and_the_last_range_per_partition(tmp_path: Path) -> None:
    msgs = [snapshot(i) for i in range(10)]
    writer = ArchiveWriter(tmp_path)
    try:
        write_records(writer, SNAPSHOTS, "t", 0, records_of(msgs), per_file=4)
        write_records(writer, SNAPSHOTS, "t", 1, records_of(msgs[:3]), first_offset=40)
    finally:
        writer.close()
    folder = day_dir(tmp_path, "snapshots", "HK", "2024-06-03")
    leftover = tmp_path_of(folder, "t", 0, 10, 19)
    found = scan(tmp_path, ["snapshots", "flows"])
    assert len(found.files) == 4 and found.leftovers == [leftover]
    assert found.last_range("t", 0) == (8, 9)
    assert found.last_range("t", 1) == (40, 42)
    assert found.last_range("t", 2) is None and found.last_range("other", 0) is None


def tmp_path_of(folder: Path, topic: str, partition: int, first: int, last: int) -> Path:
    """A temporary file a writer left behind."""
    path = tmp_path(folder / file_name(topic, partition, first, last))
    path.write_bytes(b"PAR1 half written")
    return path


@pytest.mark.parametrize(
    ("where", "content", "message"),
    [
        ("notes.txt", b"x", "notes.txt is not part of a capflow archive"),
        ("snapshots/market=XX", None, "market=XX is not part of a capflow archive"),
        ("snapshots/market=HK/2024-06-03", None, "2024-06-03 is not part of a capflow archive"),
        ("snapshots/market=HK/trading_day=2024-06-03/data.parquet", b"PAR1", "data.parquet is not"),
        ("snapshots/market=HK/trading_day=2024-06-03/t-p0-0-9.parquet", b"PAR1trunc",
         "t-p0-0-9.parquet is not a Parquet file"),
    ],
)  # fmt: skip
def test_a_foreign_or_damaged_file_is_an_error_naming_it(
    tmp_path: Path, where: str, content: bytes | None, message: str
) -> None:
    archive_records(tmp_path, SNAPSHOTS, records_of([snapshot(0)]))
    path = tmp_path / where
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(ArchiveError, match=message):
        scan(tmp_path, ["snapshots"])
    if content is not None and where.endswith(".parquet"):  # the reader says so too
        with pytest.raises(ArchiveError, match=Path(where).name):
            list(read_rows(tmp_path, SNAPSHOTS, DayRange(), ["HK.00700"]))


def test_day_ranges() -> None:
    days = ["2024-06-03", "2024-06-04", "2024-06-05"]
    assert DayRange().pick(days) == ["2024-06-05"]
    assert DayRange("2024-06-04").pick(days) == days[1:]
    assert DayRange(None, "2024-06-04").pick(days) == days[:2]
    assert DayRange("2024-06-04", "2024-06-04").pick(days) == ["2024-06-04"]
    assert DayRange("2024-07-01").pick(days) == [] and DayRange().pick([]) == []


def test_partition_keys_are_columns_of_every_dataset() -> None:
    for dataset in (SNAPSHOTS, FLOWS, ALERTS):
        assert set(PARTITION_KEYS) <= set(dataset.column_names)
        assert {"security", dataset.time} <= {c.name for c in dataset.file_columns}


def _doc_tables() -> dict[str, list[tuple[str, str]]]:
    """(column, type) rows of each dataset's table in docs/archive.md."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "archive.md").read_text()
    tables: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
        elif current is not None and line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            tables.setdefault(current, []).append((cells[0].strip("`"), cells[1]))
    return tables


def test_docs_list_every_column_with_its_type() -> None:
    tables = _doc_tables()
    for dataset in (SNAPSHOTS, FLOWS, ALERTS):
        assert tables[dataset.name] == [(c.name, c.type) for c in dataset.file_columns]
