"""Flow state as a version 2 worker stores it today: read, continued, same bytes out.

tests/data/flow_state_v2.json was recorded with the release whose FlowState wrote its
stored form by hand (flow state version 2): for two securities, the stored state
after some snapshots (one plain, one with per-amount corrections, absent super
amounts, a duplicate and a late snapshot, so its offsets are not zero) and the flow
and alert payloads published for the snapshots after it, plus the state stored after
the last one. A worker of this release must continue from that state, publish exactly
the same bytes and store exactly the same state.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.pipeline.processor import SecurityProcessor
from streams.processing.flow import STATE_VERSION, FlowState
from streams.processing.thresholds import DetectorParams, ThresholdConfig

FIXTURE = json.loads((Path(__file__).parents[1] / "data" / "flow_state_v2.json").read_text())
CASES = {case["case"]: case for case in FIXTURE["securities"]}
NOW = 1717378200.0 + 3600  # the wall clock the records were checked against


@pytest.mark.parametrize("name", ["plain", "corrected"])
def test_version_2_state_continues_byte_for_byte(name: str) -> None:
    case: dict[str, Any] = CASES[name]
    assert orjson.loads(case["state"])["flow"]["v"] == 2
    proc = SecurityProcessor(ThresholdConfig(DetectorParams(**FIXTURE["params"])), lambda: NOW)
    key = case["key"].encode()
    blob: bytes | None = case["state"].encode()
    flows, alerts = [], []
    for record in case["records"]:
        out = proc.process(blob, proc.decode(key, base64.b64decode(record)))
        blob = out.state
        flows.append(out.flow.decode() if out.flow else None)
        alerts.append(out.alert.decode() if out.alert else None)
    assert flows == case["flows"]
    assert alerts == case["alerts"] and any(alerts)  # each case reaches an alert
    assert blob is not None and blob.decode() == case["final_state"]


@pytest.mark.parametrize("name", ["plain", "corrected"])
def test_version_2_state_reads_back_unchanged(name: str) -> None:
    stored = orjson.loads(CASES[name]["state"])["flow"]
    assert stored["v"] == STATE_VERSION
    assert orjson.dumps(FlowState.from_dict(stored).to_dict()) == orjson.dumps(stored)


def test_the_corrected_case_carries_offsets() -> None:
    """The fixture exercises what a plain state would not: non-zero offsets, counters."""
    flow = orjson.loads(CASES["corrected"]["state"])["flow"]
    assert any(flow["offset"]) and flow["corrections"] and flow["duplicates"]
    assert flow["adjusted"] != flow["last_amounts"]
