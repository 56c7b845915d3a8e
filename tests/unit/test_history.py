"""`capflow history`, `backtest --archive` and `plot --archive` over archives on disk."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest

from streams.archive.datasets import ALERTS, FLOWS, SNAPSHOTS
from streams.cli import main
from streams.devtools.archive import archive_records, snapshot_at
from streams.offline.backtest import load_archive, load_recording, parameter_grid, run
from streams.offline.recording import read_recording, to_json_line
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.processing.events import alert_payload
from tests.integration.harness import make_alert
from tests.unit.test_archive import flows_of_a_day, records_of

T0 = 1_717_378_200.0  # 2024-06-03 09:30:00 HKT
DAY = 86_400.0


def reversal_days() -> list[DistributionSnapshot]:
    """Three securities over two days: large inflow, then a larger outflow, each day."""
    out = []
    for day in (0, 1):
        for sec_i, security in enumerate(("HK.00700", "HK.09988", "HK.00005")):
            in_big = out_big = 0.0
            for i in range(80):
                if i < 40:
                    in_big += 1_000_000 * (sec_i + 1)
                else:
                    out_big += 1_500_000 * (sec_i + 1)
                mid = 500_000.0 * i
                amounts = [0.0, in_big, mid, mid, 0.0, out_big, mid, mid]
                out.append(snapshot_at(security, T0 + day * DAY + 30 * i, amounts, i))
    return sorted(out, key=lambda m: m.update_timestamp)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    msgs = reversal_days()
    first = [m for m in msgs if m.security == "HK.00700"]  # keyed by security, as on the topic
    rest = [m for m in msgs if m.security != "HK.00700"]
    archive_records(root, SNAPSHOTS, records_of(first), partition=0, per_file=50)
    archive_records(root, SNAPSHOTS, records_of(rest), partition=1, per_file=70)
    return root


def history(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["history", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output_is_a_recording_of_the_days_asked(
    archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = history(
        capsys, "HK.09988", "--archive", str(archive), "--from", "2024-06-04", "--format", "json"
    )
    assert code == 0
    wanted = [
        m for m in reversal_days() if m.security == "HK.09988" and m.trading_day == "2024-06-04"
    ]
    assert out.encode() == b"".join(to_json_line(m) for m in wanted)
    (tmp_path / "day.jsonl").write_text(out)
    assert list(read_recording(tmp_path / "day.jsonl")) == wanted  # backtest and replay read it


def test_table_shows_the_latest_day_by_default(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = history(capsys, "HK.00700", "--archive", str(archive))
    lines = out.splitlines()
    assert code == 0 and len(lines) == 81
    assert lines[0].split() == [
        "update_time", "in_super", "in_big", "in_mid", "in_small",
        "out_super", "out_big", "out_mid", "out_small", "currency",
    ]  # fmt: skip
    assert lines[1].split()[-1] == "HKD"
    assert lines[1].startswith("2024-06-04 09:30:00")
    assert lines[-1].startswith("2024-06-04 10:09:30")
    assert lines[40].split()[3] == "+40.0M"  # in_big after 40 snapshots of +1M


def test_csv_has_every_column_for_several_securities(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = history(
        capsys, "HK.00700", "HK.00005", "--archive", str(archive), "--from", "2024-06-03",
        "--to", "2024-06-03", "--format", "csv",
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 160
    assert list(rows[0]) == list(SNAPSHOTS.column_names)
    assert {r["security"] for r in rows} == {"HK.00700", "HK.00005"}
    assert {r["trading_day"] for r in rows} == {"2024-06-03"}
    times = [float(r["update_timestamp"]) for r in rows]
    assert times == sorted(times)


def test_flows_and_alerts_come_back_as_published(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flows = flows_of_a_day()
    alerts = [alert_payload(make_alert("HK.00700", m)) for m in (5, 70)]
    archive_records(tmp_path, FLOWS, [(b"HK.00700", v) for v in flows])
    archive_records(tmp_path, ALERTS, [(b"HK.00700", v) for v in alerts])
    code, out, _ = history(
        capsys, "HK.00700", "--archive", str(tmp_path), "--flows", "--format", "json"
    )
    assert code == 0 and out.encode().splitlines() == flows
    code, out, _ = history(capsys, "HK.00700", "--archive", str(tmp_path), "--alerts")
    assert code == 0 and "inflow_to_outflow" in out and len(out.splitlines()) == 3
    code, out, _ = history(capsys, "HK.00700", "--archive", str(tmp_path), "--flows")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["event_time", "regime", "L"]


def test_no_rows_says_which_days_the_archive_holds(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = history(capsys, "HK.00700", "--archive", str(archive), "--from", "2024-07-01")
    assert code == 1 and out == ""
    assert "no snapshots of HK.00700 from 2024-07-01" in err
    assert "HK: 2024-06-03 to 2024-06-04 (2 days)" in err
    code, _, err = history(capsys, "US.AAPL", "--archive", str(archive))
    assert code == 1 and "US: no day" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--from", "2024-06-05", "--to", "2024-06-04"], "--from 2024-06-05 is after --to"),
        (["--flows", "--alerts"], "pick one"),
        (["--to", "2024-13-01"], "--to: '2024-13-01' is not a date"),
    ],
)
def test_bad_usage_exits_2(
    archive: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = history(capsys, "HK.00700", "--archive", str(archive), *argv)
    assert code == 2 and out == "" and message in err
    code, _, err = history(capsys, "00700", "--archive", str(archive))
    assert code == 2 and "MARKET.CODE" in err


def test_a_damaged_file_is_named(archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = sorted(archive.rglob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    code, _, err = history(capsys, "HK.00700", "--archive", str(archive), "--from", "2024-06-03")
    assert code == 1 and victim.name in err and "Traceback" not in err


def test_backtest_of_the_archive_is_backtest_of_the_recording(
    archive: Path, tmp_path: Path
) -> None:
    """The same snapshots, from a recording file and from the archive: the same alerts."""
    recording = tmp_path / "days.jsonl"
    recording.write_bytes(b"".join(to_json_line(m) for m in reversal_days()))
    from streams.archive.query import DayRange

    sets = parameter_grid({"confirm": [1, 2]})
    from_file = run(load_recording(recording), sets)
    from_archive = run(load_archive(archive, DayRange("2024-06-03", "2024-06-04")), sets)
    for a, b in zip(from_file, from_archive, strict=True):
        # Each security's records in the same order; securities interleave otherwise.
        assert sorted(a.payloads()) == sorted(b.payloads())
        assert len(a.alerts) == 6  # one reversal per security-day
    one = load_archive(archive, DayRange("2024-06-04", "2024-06-04"), securities={"HK.00005"})
    assert one.securities == 1 and one.security_days == 1 and len(one.snapshots) == 80


def test_backtest_command_reads_the_archive(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["backtest", "--archive", str(archive), "--from", "2024-06-03", "--json", "--quiet"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert orjson.loads(out)["alerts"] == 6
    assert main(["backtest", "x.jsonl", "--archive", str(archive)]) == 2
    assert main(["backtest", "--quiet"]) == 2
    assert "FILE" in capsys.readouterr().err


def test_plot_reads_flows_and_alerts_from_the_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flows = flows_of_a_day(40)
    archive_records(tmp_path, FLOWS, [(b"HK.00700", v) for v in flows])
    archive_records(tmp_path, ALERTS, [(b"HK.00700", alert_payload(make_alert("HK.00700", 5)))])
    out_png = tmp_path / "day.png"
    code = main(["plot", "HK.00700", "--archive", str(tmp_path), "-o", str(out_png)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "40 flow records, 1 alert(s)" in out
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code = main(["plot", "HK.09988", "--archive", str(tmp_path), "-o", str(out_png)])
    assert code == 1 and "no flow records of HK.09988" in capsys.readouterr().err
