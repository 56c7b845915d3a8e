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
from streams.pipeline.processor import SecurityProcessor
from streams.processing.events import parse_alert, parse_flow
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
