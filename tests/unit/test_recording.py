"""streams.offline.recording: DistributionSnapshot <-> JSON lines, and clear errors on bad lines."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from streams.offline.recording import (
    RecordingError,
    from_json_line,
    read_recording,
    to_json_line,
    write_recording,
)
from streams.opend.snapshot import CapitalDistribution, snapshot_to_proto
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot

T0 = 1_717_378_200.0  # 2024-06-03 09:30:00 HKT


def snapshot(i: int, security: str = "HK.00700") -> DistributionSnapshot:
    """A snapshot with every field set, amounts with cents, and a few exact zeros."""
    dist = CapitalDistribution(
        security=security,
        market="HK",
        qot_market=1,
        code=security.split(".")[1],
        capital_in_super=1_234_567.89 + i,
        capital_in_big=0.0,  # a zero must survive the trip too
        capital_in_mid=98_765.43 * (i + 1),
        capital_in_small=0.01,
        capital_out_super=2_000_000.5,
        capital_out_big=123_456_789_012.25,
        capital_out_mid=1e-3,
        capital_out_small=42.0 + i,
        update_time=f"2024-06-03 09:30:{i:02d}",
        update_timestamp=T0 + i,
    )
    return snapshot_to_proto(dist, "opend-sim@127.0.0.1:11111", 1_717_378_200_123 + i, 10 + i)


def test_one_snapshot_round_trips_exactly() -> None:
    msg = snapshot(3)
    line = to_json_line(msg)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = from_json_line(line)
    assert back == msg
    assert back.SerializeToString(deterministic=True) == msg.SerializeToString(deterministic=True)
    # The str form of a line parses the same as its bytes.
    assert from_json_line(line.decode()) == msg


def test_line_uses_proto_field_names_and_prints_zero_fields() -> None:
    msg = snapshot(0)
    data = orjson.loads(to_json_line(msg))
    assert set(data) == {f.name for f in DistributionSnapshot.DESCRIPTOR.fields}
    assert data["capital_in_big"] == 0.0
    assert data["security"] == "HK.00700" and data["trading_day"] == "2024-06-03"
    assert data["update_timestamp"] == T0
    # A snapshot with everything at its default still writes every field.
    empty = orjson.loads(to_json_line(DistributionSnapshot()))
    assert set(empty) == set(data)


def test_file_round_trip_keeps_order_and_skips_blank_lines(tmp_path: Path) -> None:
    snaps = [snapshot(i, sec) for i in range(5) for sec in ("HK.00700", "HK.09988")]
    buf = io.BytesIO()
    write_recording(buf, snaps)
    path = tmp_path / "day.jsonl"
    lines = buf.getvalue().splitlines(keepends=True)
    assert len(lines) == len(snaps)
    # Blank and whitespace-only lines (e.g. a trailing newline added by an editor) are skipped.
    path.write_bytes(b"\n" + b"".join(lines[:4]) + b"   \n" + b"".join(lines[4:]) + b"\n\n")
    back = list(read_recording(path))
    assert back == snaps


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert list(read_recording(path)) == []


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        (b"not json at all", "Failed to load JSON"),
        (b'{"security": "HK.00700", "nope": 1}', "nope"),
        (b'{"security": 700}', "security"),
        (b'{"update_timestamp": "soon"}', "update_timestamp"),
        (b'{"capital_in_big": 1e400}', "capital_in_big"),
        (b"[1, 2]", ""),
        (b"null", ""),
        (b'{"security": "HK.00700"', "Failed to load JSON"),
    ],
)
def test_bad_line_is_a_recording_error_naming_the_place(line: bytes, detail: str) -> None:
    with pytest.raises(RecordingError) as err:
        from_json_line(line, "day.jsonl:7")
    message = str(err.value)
    assert message.startswith("day.jsonl:7: not a DistributionSnapshot")
    assert detail in message
    assert isinstance(err.value, ValueError)


def test_line_that_is_not_utf8_is_a_recording_error() -> None:
    with pytest.raises(RecordingError, match=r"^day.jsonl:2: "):
        from_json_line(b'{"security": "HK.0\xff0700"}', "day.jsonl:2")


def test_read_recording_names_file_and_line_of_the_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl"
    good = to_json_line(snapshot(0)) + to_json_line(snapshot(1))
    path.write_bytes(good + b"\n" + b'{"security": "HK.00700", "bogus": true}\n')
    it = read_recording(path)
    # The good lines come out before the error, which names line 4 (blank line 3 counts).
    assert next(it) == snapshot(0)
    assert next(it) == snapshot(1)
    with pytest.raises(RecordingError, match=rf"^{path}:4: not a DistributionSnapshot.*bogus"):
        next(it)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(read_recording(tmp_path / "missing.jsonl"))


def test_empty_object_is_not_a_snapshot() -> None:
    with pytest.raises(RecordingError, match="needs security"):
        from_json_line(b"{}", "f.jsonl:3")


def test_absent_super_amounts_are_null_and_stay_absent_while_zero_stays_zero() -> None:
    msg = snapshot(0)
    msg.ClearField("capital_in_super")
    msg.capital_out_super = 0.0
    line = to_json_line(msg)
    data = orjson.loads(line)
    assert data["capital_in_super"] is None and data["capital_out_super"] == 0.0
    back = from_json_line(line)
    assert not back.HasField("capital_in_super")
    assert back.HasField("capital_out_super") and back.capital_out_super == 0.0
    assert back == msg


def test_a_capital_flow_series_round_trips_as_its_own_line() -> None:
    from streams.pb.capflow.v1.capital_flow_pb2 import CapitalFlowRow, CapitalFlowSeries

    series = CapitalFlowSeries(
        security="HK.00700", market="HK", qot_market=1, code="00700", trading_day="2024-06-03",
        rows=[CapitalFlowRow(time="2024-06-03 09:30:00", timestamp=1717378200.0)],
        last_valid_time="2024-06-03 09:30:10", last_valid_timestamp=1717378210.0,
        received_at_ms=1717378210500, source="opend://x:1", period_type=1,
    )  # fmt: skip
    line = to_json_line(series)
    assert line.startswith(b'{"capital_flow":')
    assert from_json_line(line) == series
    with pytest.raises(RecordingError, match="received_at_ms"):
        from_json_line(b'{"capital_flow": {"security": "HK.00700", "trading_day": "2024-06-03"}}')
