"""Flow state as a version 2 worker stored it: read, continued, the same numbers out.

tests/data/flow_state_v2.json was recorded with the release whose FlowState wrote its
stored form by hand (flow state version 2): for two securities, the stored state
after some snapshots (one plain, one with per-amount corrections, absent super
amounts, a duplicate and a late snapshot, so its offsets are not zero) and the flow
and alert payloads published for the snapshots after it, plus the state stored after
the last one. A worker of this release must continue from that state, publish exactly
the same payloads and store the same state, but for the fields added since
(tests/unit/compat.py): version 3 of the flow state keeps minute levels too. The
expected payloads differ from what that release published in one deliberate way, said
in the fixture's "payloads": the ``currency`` every payload carries since.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.domain.amounts import ZERO
from streams.pipeline.processor import SecurityProcessor
from streams.processing.flow import STATE_VERSION, FlowState
from streams.processing.thresholds import DetectorParams, ThresholdConfig
from tests.unit.compat import ADDED_FLOW_STATE, same_alerts, same_flows

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
    assert same_flows(flows, case["flows"])
    assert same_alerts(alerts, case["alerts"]) and any(alerts)  # each case reaches an alert
    assert blob is not None
    final, want = orjson.loads(blob), orjson.loads(case["final_state"])
    assert final["detector"] == want["detector"]
    assert final["flow"]["v"] == STATE_VERSION == 3
    assert final["flow"]["market"] == "HK" and final["flow"]["minutes"] == []
    kept = {k: v for k, v in final["flow"].items() if k not in (*ADDED_FLOW_STATE, "v")}
    assert kept == {k: v for k, v in want["flow"].items() if k != "v"}


@pytest.mark.parametrize("name", ["plain", "corrected"])
def test_version_2_state_reads_back_as_version_3(name: str) -> None:
    stored = orjson.loads(CASES[name]["state"])["flow"]
    assert stored["v"] == 2
    again = FlowState.from_dict(stored).to_dict()
    assert again["v"] == STATE_VERSION
    assert {k: v for k, v in again.items() if k not in (*ADDED_FLOW_STATE, "v")} == {
        k: v for k, v in stored.items() if k != "v"
    }
    assert orjson.dumps(FlowState.from_dict(again).to_dict()) == orjson.dumps(again)


def test_stored_keys_are_the_dataclass_fields_in_version_2_order_then_version_3s() -> None:
    stored = FlowState(window=60.0).to_dict()
    names = [f.name for f in dataclasses.fields(FlowState)]
    assert list(stored) == ["v", *names]
    v2 = list(orjson.loads(CASES["plain"]["state"])["flow"])
    assert list(stored) == [*v2, *ADDED_FLOW_STATE]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"history": [[1.0, 2.0, "x", 0.0, 0.0, 0.0]]}, r"^flow\.history: item 0: expected float"),
        ({"offset": [0.0] * 7}, r"^flow\.offset: expected a list of 8 numbers"),
        ({"truncated": 0}, r"^flow\.truncated: expected bool"),
        ({"stale": 1.5}, r"^flow\.stale: expected int"),
        ({"window": -1.0}, r"^flow: window must be a finite number > 0"),
        ({"extra": 1}, r"unknown \['extra'\]"),
    ],
)
def test_damaged_state_names_the_field(change: dict[str, Any], message: str) -> None:
    stored = orjson.loads(CASES["corrected"]["state"])["flow"]
    with pytest.raises(ValueError, match=message):
        FlowState.from_dict({**stored, **change})


def test_damaged_version_1_state_is_a_clear_error() -> None:
    v1 = {**orjson.loads(CASES["plain"]["state"])["flow"], "v": 1, "offset": [0.0, 1.0]}
    with pytest.raises(ValueError, match=r"^flow \(version 1\): not a usable state"):
        FlowState.from_dict(v1)


def test_zero_offsets_load_as_the_shared_zero() -> None:
    """``_correct`` takes its exact fast path only for the ZERO instance itself."""
    stored = orjson.loads(CASES["plain"]["state"])["flow"]
    assert FlowState.from_dict(stored).offset is ZERO
