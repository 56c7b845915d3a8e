"""Payloads on capflow.flow.v1 and capflow.alerts.v1 match schemas/*.schema.json exactly."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from streams.processing.detector import Alert, DetectorState, Regime, make_alert_id
from streams.processing.events import (
    alert_event,
    alert_headers,
    alert_payload,
    flow_payload,
    flow_point_from_record,
    parse_alert,
    parse_flow,
    rfc3339,
)
from streams.processing.flow import FlowPoint, FlowState, Snapshot
from streams.processing.thresholds import DetectorParams

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
DAY = "2026-11-25"
T0 = 1_795_570_200.0  # 2026-11-25T01:30:00Z


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def run_day() -> tuple[list[tuple[FlowPoint, Regime, float]], list[Alert]]:
    """A small scripted day: inflow, then a reversal to outflow."""
    flow, det = FlowState(window=300), DetectorState()
    params = DetectorParams(theta_abs=1e6, theta_rel=0.1)
    in_big = out_big = 0.0
    points: list[tuple[FlowPoint, Regime, float]] = []
    alerts: list[Alert] = []
    for i in range(40):
        if i < 15:
            in_big += 5e6
        else:
            out_big += 8e6
        snap = Snapshot("HK.00700", "HK", DAY, T0 + 60 * i, 1e6, in_big, 3e5, 1e5,
                        2e5, out_big, 2e5, 1e5)  # fmt: skip
        p = flow.update(snap)
        assert p is not None
        alert = det.step(p, params)
        points.append((p, det.regime, det.threshold))
        if alert:
            alerts.append(alert)
    return points, alerts


def test_rfc3339() -> None:
    assert rfc3339(T0) == "2026-11-25T01:30:00Z"
    assert rfc3339(T0 + 0.25) == "2026-11-25T01:30:00.25Z"


def test_flow_payloads_validate_and_round_trip() -> None:
    v = validator("flow.v1.schema.json")
    points, _ = run_day()
    for point, regime, theta in points:
        raw = flow_payload(point, regime, theta)
        data = parse_flow(raw)
        v.validate(data)
        assert flow_point_from_record(data) == point
    first = parse_flow(flow_payload(*points[0]))
    assert list(first) == [
        "schema", "security", "market", "currency", "trading_day", "event_time", "event_ts",
        "window_s", "net", "large_net", "turnover", "change", "threshold", "regime",
        "snapshots_in_window", "baseline", "baseline_ts",
    ]  # fmt: skip
    assert first["currency"] == "HKD"
    assert first["event_time"] == "2026-11-25T01:30:00Z"
    assert first["change"] == {
        "super": 8e5, "big": 5e6, "mid": 1e5, "small": 0.0, "large": 5.8e6, "turnover": 6.9e6,
    }  # fmt: skip
    assert first["regime"] == "INFLOW"


def test_alert_payloads_validate() -> None:
    v = validator("alert.v1.schema.json")
    _, alerts = run_day()
    assert [a.direction for a in alerts] == ["inflow_to_outflow"]
    alert = alerts[0]
    event = parse_alert(alert_payload(alert))
    v.validate(event)
    assert event == alert_event(alert)
    assert event["id"] == alert.alert_id == event["data"]["alert_id"]
    assert event["subject"] == "HK.00700"
    assert event["type"] == "capflow.alert.reversal.v1"
    assert event["time"] == rfc3339(alert.event_ts) == event["data"]["event_time"]
    assert event["data"]["regime_started_time"] == rfc3339(alert.regime_started_ts)
    assert Alert.from_dict(event["data"]) == alert
    assert event["data"]["currency"] == "HKD"


@pytest.mark.parametrize(
    ("security", "currency"),
    [("US.AAPL", "USD"), ("SH.600519", "CNY"), ("SZ.000001", "CNY"), ("JP.7203", "JPY")],
)
def test_payloads_name_the_currency_of_the_market(security: str, currency: str) -> None:
    points, alerts = run_day()
    market = security.split(".")[0]
    point = dataclasses.replace(points[0][0], security=security, market=market)
    alert = dataclasses.replace(alerts[0], security=security, market=market)
    flow = parse_flow(flow_payload(point, *points[0][1:]))
    event = parse_alert(alert_payload(alert))
    assert flow["currency"] == event["data"]["currency"] == currency
    validator("flow.v1.schema.json").validate(flow)
    validator("alert.v1.schema.json").validate(event)
    # The id stays what security, day, direction and flip time make it.
    assert event["id"] == make_alert_id(
        security, alert.trading_day, alert.direction, alert.regime_started_ts
    )


def test_alert_id_is_the_one_alerts_had_before_they_named_a_currency() -> None:
    """Sinks deduplicate on the id: the same alert keeps the id it had (this value was
    computed before payloads named a currency)."""
    _, alerts = run_day()
    assert alerts[0].alert_id == "ae94a79cb89726c1e235b9c6c2db3440"


def test_alert_headers_repeat_the_cloudevents_attributes() -> None:
    _, alerts = run_day()
    raw = alert_payload(alerts[0])
    event = parse_alert(raw)
    headers = alert_headers(event)
    assert [name for name, _ in headers] == [
        "ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type",
    ]  # fmt: skip
    values = {name: value.decode() for name, value in headers}
    for name in ("specversion", "id", "source", "type", "time", "subject"):
        assert values[f"ce_{name}"] == event[name]
    assert values["ce_id"] == alerts[0].alert_id and values["ce_subject"] == "HK.00700"
    # The value is the whole event (structured mode): its media type is CloudEvents JSON,
    # so a CloudEvents SDK reads the value as the event, not as the event's data.
    assert values["content-type"].startswith("application/cloudevents+json")


def broken_flows() -> list[dict[str, Any]]:
    points, _ = run_day()
    good = orjson.loads(flow_payload(*points[0]))
    out = []
    for mutate in (
        lambda d: d.pop("regime"),
        lambda d: d.update(regime="UP"),
        lambda d: d.update(extra=1),
        lambda d: d["change"].pop("large"),
        lambda d: d["net"].update(huge=1.0),
        lambda d: d.update(event_time="2026-11-25 01:30:00"),
        lambda d: d.update(large_net="12"),
        lambda d: d.update(snapshots_in_window=0),
        lambda d: d.pop("currency"),
        lambda d: d.update(currency="hkd"),
    ):
        d = orjson.loads(orjson.dumps(good))
        mutate(d)
        out.append(d)
    return out


@pytest.mark.parametrize("payload", broken_flows())
def test_broken_flow_payload_fails(payload: dict[str, Any]) -> None:
    assert not validator("flow.v1.schema.json").is_valid(payload)


def test_broken_alert_payload_fails() -> None:
    v = validator("alert.v1.schema.json")
    _, alerts = run_day()
    good = alert_event(alerts[0])
    for mutate in (
        lambda d: d.pop("id"),
        lambda d: d.update(specversion="0.3"),
        lambda d: d.update(unexpected=True),
        lambda d: d["data"].update(direction="sideways"),
        lambda d: d["data"].pop("previous_peak"),
        lambda d: d["data"].update(previous_regime="NEUTRAL"),
        lambda d: d.update(id="XYZ"),
        lambda d: d["data"].pop("currency"),
        lambda d: d["data"].update(currency="HK$"),
    ):
        d = orjson.loads(orjson.dumps(good))
        mutate(d)
        assert not v.is_valid(d), mutate


def test_parse_alert_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        parse_alert(b"{oops")
    with pytest.raises(ValueError, match="lacks"):
        parse_alert(b'{"specversion": "1.0"}')
    with pytest.raises(ValueError, match=r"not a capflow\.flow\.v1"):
        parse_flow(b'{"schema": "other"}')
