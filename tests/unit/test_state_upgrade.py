"""State that a version 1 worker left in the changelog: read, continued, same bytes out.

tests/data/detector_state_v1.json was recorded with the release that wrote detector
state version 1 (commit 7a5f685): for two securities, the stored state at one
snapshot (one with a flip pending, one after a confirmed alert, whose ``prev_*``
fields are left over) and the flow and alert payloads it published for that snapshot
and the ones after it. A worker of this release must continue from that state and
publish exactly the same payloads, but for the fields added since (tests/unit/compat.py)
and the ``currency`` every payload carries since (the fixture's "payloads" says where).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.pipeline.processor import SecurityProcessor
from streams.processing.detector import STATE_VERSION, DetectorState
from streams.processing.thresholds import DetectorParams, ThresholdConfig
from tests.unit.compat import same_alerts, same_flows

FIXTURE = json.loads((Path(__file__).parents[1] / "data" / "detector_state_v1.json").read_text())
CASES = {case["case"]: case for case in FIXTURE["securities"]}


@pytest.mark.parametrize("name", ["pending", "confirmed"])
def test_version_1_state_continues_byte_for_byte(name: str) -> None:
    case: dict[str, Any] = CASES[name]
    assert orjson.loads(case["state"])["detector"]["v"] == 1
    proc = SecurityProcessor(ThresholdConfig(DetectorParams(**FIXTURE["params"])))
    key = case["key"].encode()
    blob: bytes | None = case["state"].encode()
    flows, alerts = [], []
    for record in case["records"]:
        out = proc.process(blob, proc.decode(key, base64.b64decode(record)))
        blob = out.state
        flows.append(out.flow.decode() if out.flow else None)
        alerts.append(out.alert.decode() if out.alert else None)
    assert same_flows(flows, case["flows"])
    assert same_alerts(alerts, case["alerts"]) and any(alerts)  # each case reaches an alert
    # What is stored now is version 2 and reads back the same.
    assert blob is not None
    stored = orjson.loads(blob)["detector"]
    assert stored["v"] == STATE_VERSION == 2
    assert DetectorState.from_dict(stored).to_dict() == stored
