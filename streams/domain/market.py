"""Markets in one table: security codes, OpenD market numbers, time zones, currencies, hours.

Users and topic keys name a security "MARKET.CODE" (the futu SDK's form, "HK.00700");
OpenD's wire carries ``Qot_Common.Security{market, code}`` with a QotMarket number.
Only the split at the first dot matters, so US codes with dots ("US.BRK.B") keep them.
Trading days and updateTime are market-local, so each market carries its exchange's
time zone. OpenD's amounts are in the currency the market trades in (ISO 4217), which
records and payloads name so that consumers of several markets need no table of their
own. Capital distribution only counts regular hours: the sessions let the
simulator integrate flows and the poller skip closed markets. Weekends are closed;
exchange holidays are not modelled; a market without sessions has unknown hours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_H = 3600


@dataclass(frozen=True)
class Market:
    """One market: prefix, QotMarket number, exchange time zone, currency, regular sessions.

    ``currency`` is the ISO 4217 code of its amounts; ``sessions`` are (open, close) in
    seconds after local midnight, empty when unknown.
    """

    prefix: str
    qot_market: int
    tz: str
    currency: str
    sessions: tuple[tuple[int, int], ...] = ()


_CHINA_A = ((9 * _H + 1800, 11 * _H + 1800), (13 * _H, 15 * _H))

MARKET_TABLE: dict[str, Market] = {
    m.prefix: m
    for m in (
        Market("HK", 1, "Asia/Hong_Kong", "HKD", ((9 * _H + 1800, 12 * _H), (13 * _H, 16 * _H))),
        Market("US", 11, "America/New_York", "USD", ((9 * _H + 1800, 16 * _H),)),
        Market("SH", 21, "Asia/Shanghai", "CNY", _CHINA_A),
        Market("SZ", 22, "Asia/Shanghai", "CNY", _CHINA_A),
        Market("SG", 31, "Asia/Singapore", "SGD"),
        Market("JP", 41, "Asia/Tokyo", "JPY"),
        Market("AU", 51, "Australia/Sydney", "AUD"),
        Market("MY", 61, "Asia/Kuala_Lumpur", "MYR"),
        Market("CA", 71, "America/Toronto", "CAD"),
    )
}

# Views of the table under the names the rest of capflow has always used.
MARKETS: dict[str, int] = {p: m.qot_market for p, m in MARKET_TABLE.items()}
MARKET_TZ: dict[str, str] = {p: m.tz for p, m in MARKET_TABLE.items()}
SESSIONS: dict[str, tuple[tuple[int, int], ...]] = {
    p: m.sessions for p, m in MARKET_TABLE.items() if m.sessions
}

_PREFIX_BY_NUMBER: dict[int, str] = {m.qot_market: p for p, m in MARKET_TABLE.items()}
_PREFIX_BY_NUMBER[2] = "HK"  # QotMarket_HK_Future is deprecated and means HK

_CODE = re.compile(r"^\.?[A-Za-z0-9][A-Za-z0-9.\-_]{0,31}$")
LOCAL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # OpenD's times: "yyyy-MM-dd HH:mm:ss", market local
_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


class SecurityFormatError(ValueError):
    """A security string or market number that does not name a security."""


class SecurityId(NamedTuple):
    """A parsed security: market prefix, QotMarket number and code."""

    market: str
    qot_market: int
    code: str

    def __str__(self) -> str:
        return f"{self.market}.{self.code}"


def parse_security(text: str) -> SecurityId:
    """Parse "HK.00700" -> SecurityId("HK", 1, "00700"); raises SecurityFormatError."""
    if not isinstance(text, str):
        raise SecurityFormatError(f"security must be a string like 'HK.00700', got {text!r}")
    prefix, dot, code = text.strip().partition(".")
    if not dot:
        raise SecurityFormatError(f"{text!r}: expected MARKET.CODE, e.g. 'HK.00700'")
    market = prefix.upper()
    if market not in MARKETS:
        known = ", ".join(MARKETS)
        raise SecurityFormatError(f"{text!r}: unknown market {prefix!r} (known: {known})")
    if not _CODE.match(code):
        raise SecurityFormatError(f"{text!r}: invalid code {code!r}")
    return SecurityId(market, MARKETS[market], code)


def market_of(security: str) -> str:
    """'HK.00700' -> 'HK'; raises SecurityFormatError for what :func:`parse_security` rejects.

    Cached: the flow processor asks for every record, and the same few keys recur.
    """
    if not isinstance(security, str):
        return parse_security(security).market  # raises, naming what it got
    return _market_of(security)


@lru_cache(maxsize=65536)
def _market_of(security: str) -> str:
    return parse_security(security).market


@lru_cache(maxsize=64)
def zone(market: str) -> ZoneInfo:
    """The exchange time zone of ``market``; SecurityFormatError for an unknown market.

    The one place a market's zone is made (cached): every trading day, updateTime and
    session of capflow is computed in it. Readers of records that must never fail use
    :func:`market_zone` instead.
    """
    row = MARKET_TABLE.get(market)
    if row is None:
        raise SecurityFormatError(f"unknown market {market!r} (known: {', '.join(MARKETS)})")
    return ZoneInfo(row.tz)


def parse_market(text: str) -> str:
    """A market prefix ('hk' -> 'HK'); raises SecurityFormatError for unknown markets."""
    market = text.strip().upper() if isinstance(text, str) else ""
    if market not in MARKETS:
        raise SecurityFormatError(f"unknown market {text!r} (known: {', '.join(MARKETS)})")
    return market


def to_wire(text: str) -> tuple[int, str]:
    """Wire form: "HK.00700" -> (1, "00700")."""
    sec = parse_security(text)
    return sec.qot_market, sec.code


def market_prefix(qot_market: int) -> str:
    """QotMarket number -> "HK"; raises SecurityFormatError for unknown numbers."""
    try:
        return _PREFIX_BY_NUMBER[qot_market]
    except KeyError:
        raise SecurityFormatError(f"unknown QotMarket number {qot_market}") from None


def from_wire(qot_market: int, code: str) -> str:
    """String form: (1, "00700") -> "HK.00700"."""
    if not code or not _CODE.match(code):
        raise SecurityFormatError(f"invalid code {code!r}")
    return f"{market_prefix(qot_market)}.{code}"


def currency_of(market: str) -> str:
    """ISO 4217 currency of a known market's amounts ('HK' -> 'HKD'); KeyError otherwise."""
    return MARKET_TABLE[market].currency


def _lookup(market: str | None, security: str | None) -> Market | None:
    """The table's row for ``market`` (or ``security``'s market); None when unknown."""
    key = (market or "").upper() if isinstance(market, str) else ""
    if not key and security:
        try:
            key = market_of(security)
        except SecurityFormatError:
            return None
    return MARKET_TABLE.get(key)


def market_currency(market: str | None, security: str | None = None) -> str | None:
    """Currency of ``market`` (or of ``security``'s market); None when unknown.

    For readers of topics and records written before they named it: never raises.
    """
    row = _lookup(market, security)
    return row.currency if row else None


def market_zone(market: str | None, security: str | None = None) -> ZoneInfo | None:
    """Exchange time zone of ``market`` (or of ``security``'s market); None when unknown.

    For readers of topics (console, plots): never raises, whatever the record holds.
    """
    row = _lookup(market, security)
    if row is None:
        return None
    try:
        return zone(row.prefix)
    except ZoneInfoNotFoundError:  # tzdata missing on a minimal system
        return None


def format_local_time(market: str, timestamp: float) -> str:
    """Epoch seconds as OpenD writes a time: "yyyy-MM-dd HH:mm:ss" in the market's zone."""
    return datetime.fromtimestamp(timestamp, zone(market)).strftime(LOCAL_TIME_FORMAT)


def parse_local_time(market: str, text: str) -> float:
    """OpenD's "yyyy-MM-dd HH:mm:ss" (market local) as epoch seconds.

    ValueError when the text has another shape or names no real time (2024-02-30).
    """
    if not isinstance(text, str) or not _LOCAL_TIME.match(text):
        raise ValueError(f"must be 'yyyy-MM-dd HH:mm:ss', got {text!r}")
    try:
        local = datetime.fromisoformat(text)  # the shape is checked: ~60x strptime's speed
    except ValueError:
        raise ValueError(f"{text!r} is not a real time") from None
    return local.replace(tzinfo=zone(market)).timestamp()


def trading_sessions(market: str, t: float) -> tuple[str, list[tuple[float, float]]]:
    """Market-local date of t and that day's sessions as epoch intervals (none on weekends)."""
    tz = zone(market)
    local = datetime.fromtimestamp(t, tz)
    day = local.strftime("%Y-%m-%d")
    if local.weekday() >= 5:
        return day, []
    midnight = datetime(local.year, local.month, local.day, tzinfo=tz)
    at = [
        (
            (midnight + timedelta(seconds=o)).timestamp(),
            (midnight + timedelta(seconds=c)).timestamp(),
        )
        for o, c in SESSIONS[market]
    ]
    return day, at


def is_open(market: str, t: float) -> bool:
    """Whether epoch time t falls in a regular session of the market (False: hours unknown)."""
    if market not in SESSIONS:
        return False
    return any(o <= t < c for o, c in trading_sessions(market, t)[1])


def may_be_open(security: str, t: float) -> bool:
    """Whether polling ``security`` at t can find its market open.

    False only when the market's hours are known and closed; a code that does not
    parse counts as open, so its request is made and OpenD's answer names the problem.
    """
    try:
        market = market_of(security)
    except SecurityFormatError:
        return True
    return market not in SESSIONS or is_open(market, t)


def next_open(market: str, t: float) -> float:
    """The next session start at or after t (searches up to two weeks ahead)."""
    for days in range(15):
        _day, sessions = trading_sessions(market, t + days * 86400)
        for o, c in sessions:
            if t < c:
                return max(o, t)
    raise ValueError(f"no session for {market} within two weeks of {t}")


@lru_cache(maxsize=4096)
def day_sessions(market: str, day: str) -> tuple[tuple[float, float], ...]:
    """The regular sessions of ``market`` on the market-local date ``day`` ("yyyy-MM-dd")
    as epoch intervals; empty on weekends, for markets without known hours and for a
    day that does not parse. Cached: the flow processor asks once per snapshot."""
    sessions = SESSIONS.get(market)
    if not sessions:
        return ()
    try:
        local = datetime.strptime(day, "%Y-%m-%d")
        tz = zone(market)
    except (ValueError, ZoneInfoNotFoundError):
        return ()
    if local.weekday() >= 5:
        return ()
    midnight = local.replace(tzinfo=tz)
    return tuple(
        (
            (midnight + timedelta(seconds=o)).timestamp(),
            (midnight + timedelta(seconds=c)).timestamp(),
        )
        for o, c in sessions
    )


def session_open(market: str, day: str) -> float | None:
    """When the regular session of ``day`` opens (epoch s); None when hours are unknown."""
    sessions = day_sessions(market, day)
    return sessions[0][0] if sessions else None


def trading_seconds(sessions: tuple[tuple[float, float], ...], start: float, end: float) -> float:
    """Seconds of ``[start, end]`` inside ``sessions`` (a lunch break or the night do not
    count); the plain difference when there are no sessions (hours unknown)."""
    if not sessions:
        return max(0.0, end - start)
    return sum(max(0.0, min(end, c) - max(start, o)) for o, c in sessions)
