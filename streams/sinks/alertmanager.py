"""Post alerts to Prometheus Alertmanager's v2 API (``POST /api/v2/alerts``).

Each reversal becomes one Alertmanager alert: labels identify it (alertname,
security, market, direction), annotations carry the numbers (in the market's
currency, which they name), ``startsAt`` is the event time and ``endsAt`` the event
time plus the cooldown, so Alertmanager resolves it by itself when the detector
could alert on that security again. Posting the same alert twice only refreshes it
(Alertmanager identifies alerts by their labels), so retries and re-deliveries are
harmless.

An alert delivered when its cooldown has already passed (a backlog after the
follower was down) would arrive resolved and notify nobody: it is posted as *late*
instead, active from its delivery for ``late_active`` seconds, with annotations that
say so and when it happened.
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson

from streams.processing.events import rfc3339
from streams.settings import DEFAULT_GENERATOR_URL
from streams.sinks.console import alert_currency, format_time, with_currency
from streams.sinks.http import DeliveryError, HttpPoster, PostingSink, Request, redact_url

ALERTNAME = "CapflowFlowReversal"
API_PATH = "/api/v2/alerts"
DEFAULT_LATE_ACTIVE = 900.0  # seconds a late alert stays active after its delivery
MAX_EVENT_TS = 32_503_680_000.0  # year 3000: beyond it an RFC 3339 time cannot be formed


def api_url(base: str) -> str:
    """The alerts endpoint for an Alertmanager base URL (given with or without the path)."""
    base = base.rstrip("/")
    return base if base.endswith(API_PATH) else base + API_PATH


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _event_ts(event: dict[str, Any]) -> float:
    data = event.get("data") or {}
    ts = _number(data.get("event_ts"))
    if ts is None or not 0 < ts < MAX_EVENT_TS:
        raise ValueError(f"alert {event.get('id', '?')} has no usable data.event_ts ({ts})")
    return ts


def _duration(seconds: float) -> str:
    """'45s', '25 min', '3.5 h': how long after its event an alert was delivered."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _mark_late(notes: dict[str, str], event: dict[str, Any], event_ts: float, now: float) -> None:
    """Say in the annotations that the alert was delivered after its cooldown had passed."""
    delay = now - event_ts
    notes["summary"] += " [late]"
    notes["description"] += (
        f" Delivered late, {_duration(delay)} after the event at {format_time(event)}."
    )
    notes.update(late="true", delivered_at=rfc3339(now), delivered_after=f"{delay:.0f}s")


def _annotations(event: dict[str, Any], security: str, event_ts: float) -> dict[str, str]:
    """What a person reads about the alert: summary, description, the numbers."""
    data = event.get("data") or {}
    r_w = _number(data.get("r_w"))
    threshold = _number(data.get("threshold"))
    window = _number(data.get("window_s"))
    window_text = f"{window:g}s" if window is not None else "W"
    arrow = str(data.get("direction") or "").replace("_to_", " \u2192 ")
    currency = alert_currency(event)

    def amount(value: float) -> str:
        return with_currency(f"{value:,.0f}", currency)

    return {
        "summary": f"{security}: large-order flow reversed ({arrow})",
        "description": (
            f"R_{window_text} = {amount(r_w)} crossed the threshold \u00b1{amount(threshold)}; "
            f"previous regime {str(data.get('previous_regime') or '?').lower()} "
            f"peaked at {amount(_number(data.get('previous_peak')) or 0)}."
            if r_w is not None and threshold is not None
            else f"{security} reversed ({arrow})"
        ),
        "r_w": "" if r_w is None else repr(r_w),
        "threshold": "" if threshold is None else repr(threshold),
        "window_s": "" if window is None else repr(window),
        "currency": currency or "",
        "event_time": rfc3339(event_ts),
        "trading_day": str(data.get("trading_day") or ""),
        "alert_id": str(event.get("id") or data.get("alert_id") or ""),
    }


def postable_alert(
    event: dict[str, Any],
    cooldown: float,
    generator_url: str = DEFAULT_GENERATOR_URL,
    *,
    now: float,
    late_active: float = DEFAULT_LATE_ACTIVE,
) -> dict[str, Any]:
    """One ``postableAlert`` of the Alertmanager v2 API for one capflow alert event.

    ``now`` is the delivery time: an alert whose cooldown has passed by then is late
    and stays active until ``now + late_active`` instead of arriving resolved.
    """
    data = event.get("data") or {}
    security = str(data.get("security") or event.get("subject") or "")
    event_ts = _event_ts(event)
    annotations = _annotations(event, security, event_ts)
    ends_at = event_ts + cooldown
    if now >= ends_at:  # it would arrive resolved: keep it active from its delivery
        ends_at = now + late_active
        _mark_late(annotations, event, event_ts, now)
    return {
        "labels": {
            "alertname": ALERTNAME,
            "security": security,
            "market": str(data.get("market") or security.partition(".")[0]),
            "direction": str(data.get("direction") or ""),
        },
        "annotations": {k: v for k, v in annotations.items() if v != ""},
        "startsAt": rfc3339(event_ts),
        "endsAt": rfc3339(ends_at),
        "generatorURL": generator_url.format(security=security, id=event.get("id", "")),
    }


class AlertmanagerSink(PostingSink):
    """POST each alert as a one-element list to ``<base>/api/v2/alerts``."""

    kind = "alertmanager"

    def __init__(
        self,
        url: str,
        cooldown: float,
        generator_url: str = DEFAULT_GENERATOR_URL,
        timeout: float = 10.0,
        late_active: float = DEFAULT_LATE_ACTIVE,
    ) -> None:
        for name, value in (("cooldown", cooldown), ("late_active", late_active)):
            if not value > 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        # Fail at start-up, not per alert, when the template has an unknown placeholder.
        generator_url.format(security="HK.00700", id="0" * 32)
        self.poster = HttpPoster(api_url(url), timeout)
        self.target = redact_url(url)
        self.cooldown = cooldown
        self.generator_url = generator_url
        self.late_active = late_active

    async def deliver_once(self, event: dict[str, Any]) -> None:
        try:
            alert = postable_alert(
                event,
                self.cooldown,
                self.generator_url,
                now=time.time(),  # whether an alert is late is decided at delivery
                late_active=self.late_active,
            )
        except ValueError as exc:  # the same alert can never be posted: do not retry it
            raise DeliveryError(str(exc), retryable=False) from None
        body = orjson.dumps([alert])
        await self.poster.post(Request(body, {"Content-Type": "application/json"}))
