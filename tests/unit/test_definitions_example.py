"""The worked example in docs/definitions.md is recomputed by the worker's processing step.

The test reads the table out of the page, feeds its snapshots through
``SecurityProcessor.process`` (the step the worker runs per record) and compares every
published number, so the user documentation cannot drift from the code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pipeline.processor import Incoming, Outcome, Polled, SecurityProcessor
from streams.processing.backfill import MinuteSeries
from streams.processing.events import parse_alert, parse_flow
from streams.processing.flow import MinuteLevel, Snapshot
from streams.processing.thresholds import DetectorParams, ThresholdConfig

PAGE = Path(__file__).resolve().parents[2] / "docs" / "definitions.md"
T0 = 1_795_570_200.0  # 2026-11-25 09:30:00 Hong Kong time, the open
MILLION = 1e6
PARAMS = DetectorParams(window=120, theta_abs=0, theta_rel=0.10, confirm=2, cooldown=600)


def _table(marker: str) -> list[list[str]]:
    """Body rows of the markdown table between <!-- marker --> and <!-- /marker -->."""
    text = PAGE.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\n(.*?)<!-- /{marker} -->", text, flags=re.S)
    assert match, f"{PAGE} lacks the {marker} block"
    lines = [line for line in match.group(1).splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def _record(t: float, in_big: float, out_big: float, in_small: float, out_small: float) -> bytes:
    return DistributionSnapshot(
        security="HK.00700",
        market="HK",
        qot_market=1,
        code="00700",
        capital_in_big=in_big * MILLION,
        capital_out_big=out_big * MILLION,
        capital_in_small=in_small * MILLION,
        capital_out_small=out_small * MILLION,
        update_timestamp=T0 + t,
        trading_day="2026-11-25",
        source="docs",
    ).SerializeToString()


def _number(cell: str) -> float:
    return float(cell) * MILLION


def test_worked_example_matches_the_processing_step() -> None:
    rows = _table("worked-example")
    assert len(rows) >= 10
    proc = SecurityProcessor(ThresholdConfig(PARAMS))
    state: bytes | None = None
    alerts: list[dict[str, object]] = []
    for row in rows:
        t, in_big, out_big, in_small, out_small = (float(c) for c in row[:5])
        snap = proc.decode(b"HK.00700", _record(t, in_big, out_big, in_small, out_small))
        outcome = proc.process(state, snap)
        state = outcome.state
        what = row[11]
        if what.startswith("duplicate"):
            assert outcome.flow is None, f"t={t}: a duplicate must publish nothing"
            continue
        assert outcome.flow is not None, f"t={t}: expected a flow record"
        flow = parse_flow(outcome.flow)
        got = [
            flow["large_net"],
            flow["turnover"],
            flow["change"]["large"],
            flow["change"]["turnover"],
            flow["threshold"],
        ]
        want = [_number(c) for c in row[5:10]]
        assert got == pytest.approx(want, abs=1.0), f"t={t}: {got} != {want}"
        assert flow["regime"] == row[10], f"t={t}"
        if "alert" in what and "dropped" not in what:
            assert outcome.alert is not None, f"t={t}: the page promises an alert"
            alert = parse_alert(outcome.alert)
            assert alert["data"]["direction"] in what
            alerts.append(alert)
        else:
            assert outcome.alert is None, f"t={t}: no alert expected ({what})"
    assert len(alerts) == 1

    fields = dict((k, v.strip("`")) for k, v in _table("worked-example-alert"))
    alert = alerts[0]
    data = alert["data"]
    assert isinstance(data, dict)
    assert fields["id"] == alert["id"]
    for name in ("direction", "event_time", "previous_regime"):
        assert fields[name] == data[name], name
    for name in ("previous_regime_started_time", "regime_started_time"):
        assert fields[name] == data[name], name
    for name in ("r_w", "threshold", "previous_peak"):
        assert float(fields[name]) == pytest.approx(float(data[name]), abs=1.0), name


# -- the second example: a worker that starts at 11:00 ------------------------------------

OPEN = T0  # the first example's day opens at 09:30


def _large(t: float) -> float:
    """L as the page states it: +0.5M a minute to 10:50, -0.4M to 11:03, then +0.6M."""
    m = (t - OPEN) / 60
    return MILLION * (min(m, 80) * 0.5 + (min(max(m, 80), 93) - 80) * -0.4 + max(m - 93, 0) * 0.6)


def _turnover(t: float) -> float:
    return MILLION * 3 * (t - OPEN) / 60


def _snapshot(t: float) -> Snapshot:
    large, traded = _large(t), _turnover(t)
    in_big, out_big = (traded / 2 + large) / 2, (traded / 2 - large) / 2
    small = traded / 4
    return Snapshot(
        "HK.00700", "HK", "2026-11-25", t, 0.0, in_big, 0.0, small, 0.0, out_big, 0.0, small
    )


def _history(at: float) -> MinuteSeries:
    """The minute rows from the open, the minute in progress as of ``at``."""
    rows, minute = [], OPEN
    while minute <= at + 60:
        rows.append(MinuteLevel(minute, 0.0, _large(min(minute, at)), 0.0, 0.0))
        minute += 60
    return MinuteSeries("HK.00700", "HK", "2026-11-25", int(at * 1000), at, tuple(rows))


def _clock(text: str) -> float:
    h, m, s = (int(x) for x in text.split(":"))
    return OPEN + (h * 3600 + m * 60 + s) - (9 * 3600 + 30 * 60)


def _alerts(outcomes: list[Outcome]) -> list[tuple[str, str]]:
    return [
        (parse_alert(payload)["data"]["direction"], parse_alert(payload)["data"]["event_time"])
        for o in outcomes
        for payload, _ in o.alerts()
    ]


def test_the_warm_start_example_matches_the_processing_step() -> None:
    rows = _table("warm-start-example")
    start = _clock(rows[0][0])
    proc = SecurityProcessor(ThresholdConfig(PARAMS))
    state = proc.load(None, "HK.00700")
    history = _history(start + 20)
    records: list[Incoming] = [Polled(_snapshot(start)), history]
    records += [Polled(_snapshot(_clock(r[0])), history.received_ms) for r in rows[1:]]
    outcomes = [o for r in records[:3] for o in proc.take(state, r)]
    # Folded in at 11:01: the replay set the cooldown clock to the 10:53 alert (not sent).
    assert state.detector.last_alert_ts == _clock("10:53:00")
    outcomes += [o for r in records[3:] for o in proc.take(state, r)]
    assert len(outcomes) == len(rows)
    for row, outcome in zip(rows, outcomes, strict=True):
        flow = parse_flow(outcome.flow or b"")
        assert flow["event_ts"] == _clock(row[0])
        assert [flow["large_net"], flow["turnover"]] == pytest.approx(
            [_number(row[1]), _number(row[2])], abs=1.0
        ), row
        assert flow["baseline"] == row[3], row
        at = flow["baseline_ts"]
        assert (at is None and not row[4]) or at == _clock(row[4] + ":00"), row
        got = [flow["change"]["large"], flow["change"]["turnover"], flow["threshold"]]
        if row[3] == "none":
            assert got == [None, None, None]
        else:
            assert got == pytest.approx([_number(c) for c in row[5:8]], abs=1.0), row
        assert flow["regime"] == row[8], row
    alerted = [(r[0], r[9]) for r in rows if "alert" in r[9]]
    assert _alerts(outcomes) == [("outflow_to_inflow", "2026-11-25T03:06:00Z")]
    assert alerted and alerted[0][0] == "11:06:00"

    # The running worker: snapshots every minute since the open, same alerts from 11:00.
    running = proc.load(None, "HK.00700")
    minutes = [OPEN + 60 * k for k in range(int((_clock("11:07:00") - OPEN) / 60))]
    ran = [o for t in minutes for o in proc.take(running, Polled(_snapshot(t)))]
    assert _alerts(ran) == [
        ("inflow_to_outflow", "2026-11-25T02:53:00Z"),
        ("outflow_to_inflow", "2026-11-25T03:06:00Z"),
    ]
    # Without minute history: no R_W until 11:02, then the same alert.
    bare = proc.load(None, "HK.00700")
    alone = [o for r in rows for o in proc.take(bare, Polled(_snapshot(_clock(r[0]))))]
    assert [parse_flow(o.flow or b"")["baseline"] for o in alone[:2]] == ["none", "none"]
    assert _alerts(alone) == [("outflow_to_inflow", "2026-11-25T03:06:00Z")]
