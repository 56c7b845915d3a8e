"""Render alert events for people reading a terminal, or as JSON lines for scripts.

Works on the raw CloudEvents dict as decoded from the alerts topic, so it never
depends on the producer's classes and tolerates missing optional fields.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from streams.domain.market import market_currency, market_zone

_ARROWS = {
    "inflow_to_outflow": ("\u2198", "IN\u2192OUT"),  # falling arrow
    "outflow_to_inflow": ("\u2197", "OUT\u2192IN"),  # rising arrow
}
_COLOURS = {"inflow_to_outflow": "\033[31m", "outflow_to_inflow": "\033[32m"}
_BOLD = "\033[1m"
_RESET = "\033[0m"
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def human_amount(value: Any) -> str:
    """Signed amount with a K/M/B suffix ("-12.3M"): flows span many orders of magnitude."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "?"
    sign = "-" if number < 0 else "+"
    magnitude = abs(number)
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if magnitude >= factor:
            return f"{sign}{magnitude / factor:.1f}{suffix}"
    return f"{sign}{magnitude:.0f}"


def _text(value: Any) -> str | None:
    """``value`` if it is a non-empty string: fields of a record can hold anything."""
    return value if isinstance(value, str) and value else None


def alert_currency(event: dict[str, Any]) -> str | None:
    """Currency of an alert's amounts: ``data.currency``, else (an alert written before
    alerts named it) the market's from the table; None when neither is known."""
    data = event.get("data") or {}
    if not isinstance(data, dict):
        return None
    named = data.get("currency")
    if isinstance(named, str) and _CURRENCY.match(named):
        return named
    return market_currency(
        _text(data.get("market")), _text(data.get("security")) or _text(event.get("subject"))
    )


def with_currency(amount: str, currency: str | None) -> str:
    """'-17.5M' -> '-17.5M HKD'; unchanged when the currency is unknown."""
    return f"{amount} {currency}" if currency else amount


def _event_datetime(event: dict[str, Any]) -> datetime | None:
    """Event time from data.event_ts, else the CloudEvents time; None if neither is usable."""
    data = event.get("data") or {}
    ts = data.get("event_ts") if isinstance(data, dict) else None
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        try:
            return datetime.fromtimestamp(float(ts), tz=UTC)
        except (OverflowError, OSError, ValueError):  # far outside what a clock can show
            return None
    raw = event.get("time")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def format_time(event: dict[str, Any]) -> str:
    """'2026-11-25 09:40:00 HKT (01:40:00Z)': local time first, UTC for correlating logs."""
    when = _event_datetime(event)
    if when is None:
        return "????-??-?? ??:??:??"
    data = event.get("data") or {}
    zone = market_zone(
        _text(data.get("market")), _text(data.get("security")) or _text(event.get("subject"))
    )
    utc = when.astimezone(UTC)
    if zone is None:
        return utc.strftime("%Y-%m-%d %H:%M:%SZ")
    local = when.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} ({utc:%H:%M:%SZ})"


def use_colour(stream: TextIO | None = None) -> bool:
    """Colour only for an interactive terminal, never in pipes or files."""
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


def format_alert(event: dict[str, Any], colour: bool | None = None) -> str:
    """One readable line for one alert event (CloudEvents dict with ``data``)."""
    if colour is None:
        colour = use_colour()
    data = event.get("data") or {}
    security = str(data.get("security") or event.get("subject") or "?")
    direction = str(data.get("direction") or "?")
    arrow, label = _ARROWS.get(direction, ("?", direction.upper()))
    threshold = data.get("threshold")
    threshold_text = human_amount(threshold).lstrip("+") if threshold is not None else "?"
    window = data.get("window_s")
    window_text = f"{float(window):g}s" if isinstance(window, int | float) else "W"
    event_id = str(event.get("id") or data.get("alert_id") or "")
    r_w = with_currency(human_amount(data.get("r_w")), alert_currency(event))
    parts = [
        format_time(event),
        f"{security:<10}",
        f"{arrow} {label}",
        f"R_{window_text}={r_w}",
        f"\u03b8=\u00b1{threshold_text}",
        f"prev {str(data.get('previous_regime') or '?').lower()} peak "
        f"{human_amount(data.get('previous_peak'))}",
        f"id={event_id[:12]}",
    ]
    # Whatever a record holds, it prints as one line: no newline or escape from the data.
    parts = [_printable(part) for part in parts]
    if not colour:
        return "  ".join(parts)
    tint = _COLOURS.get(direction, "")
    parts[1] = f"{_BOLD}{parts[1]}{_RESET}"
    parts[2] = f"{tint}{_BOLD}{parts[2]}{_RESET}"
    parts[3] = f"{tint}{parts[3]}{_RESET}"
    return "  ".join(parts)


def _printable(text: str) -> str:
    """``text`` with control characters (newlines, escapes) shown as '?'."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def json_line(event: dict[str, Any]) -> str:
    """The event as one compact JSON line (keys sorted, stable for diffing)."""
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode()
