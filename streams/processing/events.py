"""Payloads of capflow.flow.v1 and capflow.alerts.v1 (orjson bytes).

The shapes are fixed by schemas/flow.v1.schema.json and schemas/alert.v1.schema.json;
the numbers in them are defined for users in docs/definitions.md.
Alerts are CloudEvents 1.0 (structured JSON mode) so integrations can route them on
``type`` / ``subject`` and deduplicate on ``id`` without knowing capflow.
Amounts are in the currency of the security's market, which both payloads name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.domain.market import currency_of
from streams.processing.detector import Alert, Regime
from streams.processing.flow import CLASSES, Baseline, FlowPoint

FLOW_SCHEMA = "capflow.flow.v1"
ALERT_TYPE = "capflow.alert.reversal.v1"
ALERT_SOURCE = "capflow/reversal-detector"
_ALERT_ATTRIBUTES = ("specversion", "id", "source", "type", "subject", "time", "data")
CHANGE_KEYS = (*CLASSES, "large", "turnover")  # the members of a flow record's ``change``
# The CloudEvents Kafka binding's media type of a structured JSON event.
ALERT_CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"
_HEADER_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "subject")


def rfc3339(ts: float) -> str:
    """Epoch seconds -> '2026-11-25T01:30:00Z' (fraction only when there is one)."""
    when = datetime.fromtimestamp(ts, tz=UTC)
    if when.microsecond:
        fraction = f"{when.microsecond:06d}".rstrip("0")
        return f"{when:%Y-%m-%dT%H:%M:%S}.{fraction}Z"
    return f"{when:%Y-%m-%dT%H:%M:%S}Z"


def flow_record(point: FlowPoint, regime: Regime | str, threshold: float) -> dict[str, Any]:
    """The capflow.flow.v1 value as a dict (``regime`` and ``threshold`` after this point).

    A point without a baseline (``baseline: none``) has no R_W: its changes and threshold
    are null, and ``regime`` is the one it left unchanged.
    """
    known = point.has_change
    return {
        "schema": FLOW_SCHEMA,
        "security": point.security,
        "market": point.market,
        "currency": currency_of(point.market),
        "trading_day": point.trading_day,
        "event_time": rfc3339(point.event_ts),
        "event_ts": point.event_ts,
        "window_s": point.window_s,
        "net": point.net,
        "large_net": point.large_net,
        "turnover": point.turnover,
        "change": point.change if known else dict.fromkeys(CHANGE_KEYS),
        "threshold": float(threshold) if known else None,
        "regime": Regime(regime).value,
        "snapshots_in_window": point.snapshots_in_window,
        "baseline": point.baseline.value,
        "baseline_ts": point.baseline_ts,
    }


def flow_payload(point: FlowPoint, regime: Regime | str, threshold: float) -> bytes:
    """The capflow.flow.v1 value as orjson bytes."""
    return orjson.dumps(flow_record(point, regime, threshold))


def parse_flow(raw: bytes) -> dict[str, Any]:
    """Decode a capflow.flow.v1 value; ValueError if it is not one."""
    data = orjson.loads(raw)
    if not isinstance(data, dict) or data.get("schema") != FLOW_SCHEMA:
        raise ValueError(f"not a {FLOW_SCHEMA} record")
    return data


def flow_point_from_record(data: dict[str, Any]) -> FlowPoint:
    """Rebuild the FlowPoint of a capflow.flow.v1 record (for consumers of that topic).

    A record from before baselines were published counts as measured against a snapshot;
    one without a baseline (null changes) gets zero changes and ``Baseline.NONE``.
    """
    net, change = data["net"], data["change"]
    baseline = Baseline(data.get("baseline", Baseline.SNAPSHOT.value))

    def num(value: Any) -> float:
        return 0.0 if value is None and baseline is Baseline.NONE else float(value)

    kwargs: dict[str, Any] = {f"net_{c}": float(net[c]) for c in CLASSES}
    kwargs.update({f"change_{c}": num(change[c]) for c in CLASSES})
    baseline_ts = data.get("baseline_ts")
    return FlowPoint(
        security=data["security"],
        market=data["market"],
        trading_day=data["trading_day"],
        event_ts=float(data["event_ts"]),
        window_s=float(data["window_s"]),
        large_net=float(data["large_net"]),
        turnover=float(data["turnover"]),
        change_large=num(change["large"]),
        change_turnover=num(change["turnover"]),
        snapshots_in_window=int(data["snapshots_in_window"]),
        baseline=baseline,
        baseline_ts=None if baseline_ts is None else float(baseline_ts),
        **kwargs,
    )


def alert_event(alert: Alert, source: str = ALERT_SOURCE) -> dict[str, Any]:
    """The alert as a CloudEvents 1.0 dict; ``id`` is the deterministic alert_id."""
    data = alert.to_dict()
    data["event_time"] = rfc3339(alert.event_ts)
    data["previous_regime_started_time"] = rfc3339(alert.previous_regime_started_ts)
    data["regime_started_time"] = rfc3339(alert.regime_started_ts)
    data["currency"] = currency_of(alert.market)
    return {
        "specversion": "1.0",
        "id": alert.alert_id,
        "source": source,
        "type": ALERT_TYPE,
        "subject": alert.security,
        "time": rfc3339(alert.event_ts),
        "datacontenttype": "application/json",
        "data": data,
    }


def alert_payload(alert: Alert, source: str = ALERT_SOURCE) -> bytes:
    """The capflow.alerts.v1 value as orjson bytes."""
    return orjson.dumps(alert_event(alert, source))


def alert_headers(event: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """Kafka headers of an alert record: the CloudEvents Kafka binding's ``ce_*`` ones.

    They repeat the structured body's attributes (UTF-8), so consumers can route and
    filter on headers without parsing the value. ``content-type`` names the structured
    JSON format, as the binding asks when the value is the whole event: CloudEvents
    SDKs then read the value as the event, and the ``ce_*`` headers are for routing.
    """
    headers = [(f"ce_{name}", str(event[name]).encode()) for name in _HEADER_ATTRIBUTES]
    headers.append(("content-type", ALERT_CONTENT_TYPE.encode()))
    return headers


def parse_alert(raw: bytes) -> dict[str, Any]:
    """Decode a capflow.alerts.v1 value into the CloudEvents dict; ValueError if malformed."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"alert is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise ValueError("alert is not a JSON object")
    missing = [key for key in _ALERT_ATTRIBUTES if key not in event]
    if missing:
        raise ValueError(f"alert lacks CloudEvents attribute(s): {', '.join(missing)}")
    if event["specversion"] != "1.0" or event["type"] != ALERT_TYPE:
        raise ValueError(
            f"unexpected event specversion={event['specversion']!r} type={event['type']!r}"
        )
    if not isinstance(event["data"], dict):
        raise ValueError("alert data is not an object")
    return event
