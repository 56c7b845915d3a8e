"""Payloads and state recorded by earlier releases, compared with what this one writes.

Fixtures in tests/data hold the exact bytes an earlier worker published and stored. A
worker of this release must continue from that state with the same numbers; the only
differences allowed are the fields added since, named here (each with why).
"""

from __future__ import annotations

from typing import Any

import orjson

# Flow records: which level R_W was measured against (minute history, issue of the
# capital-flow history): every earlier record was measured against a snapshot or origin.
ADDED_FLOW = ("baseline", "baseline_ts")
# Alert data: whether minute history found the reversal.
ADDED_ALERT_DATA = ("found_in_history",)
# Stored flow state: version 3 keeps the day's market, open, first snapshot and minute levels.
ADDED_FLOW_STATE = ("market", "open_ts", "first_ts", "minutes")


def flow_without_additions(raw: str | bytes) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(raw)
    assert data["baseline"] in ("snapshot", "origin"), data["baseline"]
    return {k: v for k, v in data.items() if k not in ADDED_FLOW}


def alert_without_additions(raw: str | bytes) -> dict[str, Any]:
    event: dict[str, Any] = orjson.loads(raw)
    assert event["data"]["found_in_history"] is False
    event["data"] = {k: v for k, v in event["data"].items() if k not in ADDED_ALERT_DATA}
    return event


def same_flows(got: list[str | None], want: list[str | None]) -> bool:
    """Flow payloads equal but for the fields added since the fixture was recorded."""
    return [None if g is None else flow_without_additions(g) for g in got] == [
        None if w is None else orjson.loads(w) for w in want
    ]


def same_alerts(got: list[str | None], want: list[str | None]) -> bool:
    """Alert payloads equal but for the fields added since the fixture was recorded."""
    return [None if g is None else alert_without_additions(g) for g in got] == [
        None if w is None else orjson.loads(w) for w in want
    ]
