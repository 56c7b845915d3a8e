"""Offline backtest: reading recordings, the parameter grid, and identity with the worker step."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.cli import main
from streams.offline.backtest import (
    BacktestError,
    ParameterError,
    load_recording,
    parameter_grid,
    parse_line,
    run,
)
from streams.offline.recording import RecordingError, from_json_line, to_json_line
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pipeline.processor import SecurityProcessor
from streams.processing.thresholds import DetectorParams

T0 = 1_717_378_200.0  # 2024-06-03 09:30 HKT
DAY = "2024-06-03"
AMOUNTS = [f"capital_{d}_{c}" for d in ("in", "out") for c in ("super", "big", "mid", "small")]


def snapshot(security: str, t: float, large_in: float, large_out: float, **kw: Any) -> bytes:
    fields: dict[str, Any] = {
        "security": security,
        "market": security.split(".")[0],
        "qot_market": 1,
        "code": security.split(".")[1],
        "capital_in_big": large_in,
        "capital_out_big": large_out,
        "capital_in_small": 5e6 + 1e4 * (t - T0),
        "capital_out_small": 5e6 + 1e4 * (t - T0),
        "update_timestamp": t,
        "trading_day": DAY,
        "received_at_ms": int(t * 1000) + 12,
        "source": "opend://test",
        "poll_seq": 7,
    }
    fields.update(kw)
    return to_json_line(DistributionSnapshot(**fields))


def swinging_day(securities: int = 4, steps: int = 120) -> list[bytes]:
    """Large net that swings in and out with a period per security: several reversals."""
    lines = []
    totals = {f"HK.{i:05d}": [1e6, 1e6] for i in range(1, securities + 1)}
    for k in range(steps):
        t = T0 + 30 * k
        for i, (sec, amounts) in enumerate(totals.items()):
            period = 12 + 4 * i
            inflow = (k // period) % 2 == 0
            amounts[0 if inflow else 1] += 3e5 + 1e4 * i
            amounts[1 if inflow else 0] += 5e4
            lines.append(snapshot(sec, t, amounts[0], amounts[1]))
            if k % 17 == 0:
                lines.append(lines[-1])  # a duplicate now and then
    return lines


def write(tmp_path: Path, lines: list[bytes], name: str = "day.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join(lines))
    return path


def worker_alerts(lines: list[bytes], params: DetectorParams) -> list[bytes]:
    """What the worker's per-record step publishes, state stored as JSON between records."""
    from streams.processing.thresholds import ThresholdConfig

    proc = SecurityProcessor(ThresholdConfig(params))
    state: dict[str, bytes | None] = {}
    out = []
    for line in lines:
        msg = from_json_line(line)
        snap = proc.decode(msg.security.encode(), msg.SerializeToString())
        outcome = proc.process(state.get(msg.security), snap)
        state[msg.security] = outcome.state
        if outcome.alert is not None:
            out.append(outcome.alert)
    return out


# -- reading --------------------------------------------------------------------------------

doubles = st.floats(allow_nan=True, allow_infinity=True)
messages = st.builds(
    DistributionSnapshot,
    security=st.sampled_from(["HK.00700", "US.AAPL", "SH.600519"]),
    market=st.text(max_size=4),
    qot_market=st.integers(-(2**31), 2**31 - 1),
    code=st.text(max_size=8),
    update_time=st.text(max_size=20),
    update_timestamp=st.floats(min_value=1.0, max_value=4e9),
    trading_day=st.text(min_size=1, max_size=12),
    received_at_ms=st.integers(-(2**63), 2**63 - 1),
    source=st.text(max_size=30),
    poll_seq=st.integers(0, 2**64 - 1),
    **{name: doubles for name in AMOUNTS},
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_fast_reader_equals_the_reference_parser(msg: DistributionSnapshot) -> None:
    line = to_json_line(msg)
    fast, reference = parse_line(line, "x"), from_json_line(line, "x")
    assert fast.SerializeToString(deterministic=True) == reference.SerializeToString(
        deterministic=True
    )


def test_fast_reader_takes_camel_case_and_strings_like_json_format() -> None:
    data = {
        "security": "HK.00700",
        "tradingDay": DAY,
        "updateTimestamp": "1717378200",
        "capitalInBig": "NaN",
        "pollSeq": "18446744073709551615",
    }
    line = orjson.dumps(data)
    assert parse_line(line, "x") == json_format.Parse(line, DistributionSnapshot())


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json\n", "not a DistributionSnapshot"),
        (b'{"security": "HK.00700", "nope": 1}\n', "not a DistributionSnapshot"),
        (b'{"security": "HK.00700", "trading_day": "2024-06-03"}\n', "needs security"),
        (b"[1, 2]\n", "not a DistributionSnapshot"),
        (
            b'{"security": "HK.00700", "trading_day": "2024-06-03", "update_timestamp": 1.5e9, '
            b'"capital_in_big": "lots"}\n',
            "not a DistributionSnapshot",
        ),
    ],
)
def test_a_line_that_is_no_snapshot_names_file_and_line(
    tmp_path: Path, line: bytes, message: str
) -> None:
    path = write(tmp_path, [snapshot("HK.00700", T0, 1, 1), line])
    with pytest.raises(RecordingError, match=rf"{path}:2: .*{message}"):
        load_recording(path)


def test_missing_and_empty_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BacktestError, match="does not exist"):
        load_recording(tmp_path / "nope.jsonl")
    with pytest.raises(BacktestError, match="no usable snapshots"):
        load_recording(write(tmp_path, [b"\n", b"  \n"]))


def test_records_the_worker_dead_letters_are_skipped_and_listed(tmp_path: Path) -> None:
    good = snapshot("HK.00700", T0, 1e6, 1e5)
    bad = snapshot("HK.00700", T0 + 30, math.nan, 1e5)
    recording = load_recording(write(tmp_path, [good, bad, b"\n", good]))
    assert len(recording.snapshots) == 2
    assert len(recording.rejected) == 1
    assert recording.rejected[0].startswith(f"{tmp_path / 'day.jsonl'}:2: ")


# -- parameters -----------------------------------------------------------------------------


def test_grid_is_every_combination_in_order() -> None:
    sets = parameter_grid({"theta_rel": [0.05, 0.1], "confirm": [1, 2, 3]})
    got = [(s.defaults.theta_rel, s.defaults.confirm) for s in sets]
    assert got == [(0.05, 1), (0.05, 2), (0.05, 3), (0.1, 1), (0.1, 2), (0.1, 3)]
    assert all(s.defaults.window == 300.0 for s in sets)


def test_grid_rejects_bad_values_and_keys(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="confirm"):
        parameter_grid({"confirm": [0]})
    with pytest.raises(ParameterError, match="unknown"):
        parameter_grid({"theta": [0.1]})
    bad = tmp_path / "t.json"
    bad.write_text('{"markets": {"HK": {"theta_rell": 1}}}')
    with pytest.raises(ParameterError, match="theta_rell"):
        parameter_grid({"confirm": [1]}, thresholds_file=bad)


# -- running --------------------------------------------------------------------------------


def test_each_set_gives_exactly_the_worker_steps_alerts(tmp_path: Path) -> None:
    lines = swinging_day()
    recording = load_recording(write(tmp_path, lines))
    values: dict[str, list[Any]] = {
        "window": [120.0, 300.0],
        "theta_rel": [0.05, 0.2],
        "confirm": [1, 3],
        "cooldown": [0.0, 600.0],
    }
    results = run(recording, parameter_grid(values))
    assert len(results) == 16
    assert sum(len(r.alerts) for r in results) > 16  # the day has reversals to compare
    for result in results:
        assert list(result.payloads()) == worker_alerts(lines, result.parameters.defaults)


def test_thresholds_file_overrides_apply_per_security(tmp_path: Path) -> None:
    lines = swinging_day(securities=2)
    overrides = tmp_path / "t.json"
    overrides.write_text('{"securities": {"HK.00001": {"window": 60, "theta_abs": 1e12}}}')
    results = run(
        load_recording(write(tmp_path, lines)),
        parameter_grid({"confirm": [1, 2]}, thresholds_file=overrides),
    )
    for result in results:
        assert result.alerts and {a.security for a in result.alerts} == {"HK.00002"}


def test_summary_numbers(tmp_path: Path) -> None:
    lines = swinging_day(securities=3)
    (result,) = run(load_recording(write(tmp_path, lines)), parameter_grid({"cooldown": [0.0]}))
    gaps = []
    for sec in {a.security for a in result.alerts}:
        times = [a.event_ts for a in result.alerts if a.security == sec]
        gaps += [b - a for a, b in itertools.pairwise(times)]
    gaps.sort()
    mid = len(gaps) // 2
    median = gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2
    assert result.median_gap_s == median
    assert result.alerts_per_security_day == len(result.alerts) / 3


# -- command line ---------------------------------------------------------------------------


def test_command_prints_one_row_per_set_and_writes_the_payloads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = swinging_day()
    path = write(tmp_path, lines)
    assert main(["backtest", str(path), "--theta-rel", "0.05,0.1,0.2", "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{len(lines)} snapshots, 4 securities, 4 security-days, 3 param")
    assert len(out) == 2 + 3
    assert [row.split()[2] for row in out[2:]] == ["0.05", "0.1", "0.2"]

    alerts = tmp_path / "alerts.jsonl"
    code = main(["backtest", str(path), "--json", "--alerts-out", str(alerts), "--quiet"])
    assert code == 0
    row = orjson.loads(capsys.readouterr().out)
    written = alerts.read_bytes().splitlines()
    assert row["alerts"] == len(written) > 0
    assert written == worker_alerts(lines, DetectorParams())


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--confirm", "0"], 2, "confirm must be an integer >= 1"),
        (["--theta-rel", "a,b"], 2, "not a list of numbers"),
        (["--confirm", "1,2", "--alerts-out", "x.jsonl"], 2, "exactly one parameter set"),
    ],
)
def test_command_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    path = write(tmp_path, swinging_day(securities=1, steps=3))
    assert main(["backtest", str(path), "--quiet", *argv]) == code
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_command_bad_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", str(tmp_path / "missing.jsonl")]) == 1
    assert "does not exist" in capsys.readouterr().err
    path = write(tmp_path, [b'{"security": 5}\n'])
    assert main(["backtest", str(path)]) == 1
    assert f"{path}:1" in capsys.readouterr().err


def test_command_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, swinging_day(securities=2))
    png = tmp_path / "sweep.png"
    assert main(["backtest", str(path), "--confirm", "1,2", "--plot", str(png), "--quiet"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in capsys.readouterr().err


def test_progress_lines_go_to_stderr_at_most_once_a_second(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.commands import backtest as command

    now = [100.0]
    monkeypatch.setattr(command.time, "monotonic", lambda: now[0])
    note = command._progress("reading day.jsonl", quiet=False)
    assert note is not None
    note(10, 100)  # at once: nothing yet
    now[0] += 1.5
    note(40, 100)
    now[0] += 0.2
    note(50, 100)  # within a second of the last line: skipped
    now[0] += 0.1
    note(100, 100)  # the end of a long run is always shown
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "\rreading day.jsonl: 40%\rreading day.jsonl: 100%\n"
    assert command._progress("x", quiet=True) is None
