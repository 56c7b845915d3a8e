"""Post alerts to Prometheus Alertmanager's v2 API (``POST /api/v2/alerts``).

Each reversal becomes one Alertmanager alert: labels identify it (alertname,
security, market, direction), annotations carry the numbers, ``startsAt`` is the
event time and ``endsAt`` the event time plus the cooldown, so Alertmanager resolves
it by itself when the detector could alert on that security again. Posting the same
alert twice only refreshes it (Alertmanager identifies alerts by their labels), so
retries and re-deliveries are harmless.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from streams.processing.events import rfc3339
from streams.sinks.http import DeliveryError, HttpPoster, PostingSink, Request, redact_url

ALERTNAME = "CapflowFlowReversal"
API_PATH = "/api/v2/alerts"
DEFAULT_GENERATOR_URL = "http://127.0.0.1:6066/flow/{security}/"
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


def postable_alert(
    event: dict[str, Any], cooldown: float, generator_url: str = DEFAULT_GENERATOR_URL
) -> dict[str, Any]:
    """One ``postableAlert`` of the Alertmanager v2 API for one capflow alert event."""
    data = event.get("data") or {}
    security = str(data.get("security") or event.get("subject") or "")
    market = str(data.get("market") or security.partition(".")[0])
    direction = str(data.get("direction") or "")
    event_ts = _event_ts(event)
    r_w = _number(data.get("r_w"))
    threshold = _number(data.get("threshold"))
    window = _number(data.get("window_s"))
    window_text = f"{window:g}s" if window is not None else "W"
    arrow = direction.replace("_to_", " \u2192 ")
    annotations = {
        "summary": f"{security}: large-order flow reversed ({arrow})",
        "description": (
            f"R_{window_text} = {r_w:,.0f} crossed the threshold \u00b1{threshold:,.0f}; "
            f"previous regime {str(data.get('previous_regime') or '?').lower()} "
            f"peaked at {_number(data.get('previous_peak')) or 0:,.0f}."
            if r_w is not None and threshold is not None
            else f"{security} reversed ({arrow})"
        ),
        "r_w": "" if r_w is None else repr(r_w),
        "threshold": "" if threshold is None else repr(threshold),
        "window_s": "" if window is None else repr(window),
        "trading_day": str(data.get("trading_day") or ""),
        "alert_id": str(event.get("id") or data.get("alert_id") or ""),
    }
    return {
        "labels": {
            "alertname": ALERTNAME,
            "security": security,
            "market": market,
            "direction": direction,
        },
        "annotations": {k: v for k, v in annotations.items() if v != ""},
        "startsAt": rfc3339(event_ts),
        "endsAt": rfc3339(event_ts + cooldown),
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
    ) -> None:
        if not cooldown > 0 or not math.isfinite(cooldown):
            raise ValueError(f"cooldown must be a finite number > 0, got {cooldown}")
        # Fail at start-up, not per alert, when the template has an unknown placeholder.
        generator_url.format(security="HK.00700", id="0" * 32)
        self.poster = HttpPoster(api_url(url), timeout)
        self.target = redact_url(url)
        self.cooldown = cooldown
        self.generator_url = generator_url

    async def deliver_once(self, event: dict[str, Any]) -> None:
        try:
            payload = [postable_alert(event, self.cooldown, self.generator_url)]
        except ValueError as exc:  # the same alert can never be posted: do not retry it
            raise DeliveryError(str(exc), retryable=False) from None
        await self.poster.post(Request(orjson.dumps(payload), {"Content-Type": "application/json"}))
