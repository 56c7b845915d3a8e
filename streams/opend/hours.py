"""Regular trading hours per market, in market-local time.

Capital distribution only counts regular hours; the simulator integrates flows over
these sessions (minus its scenario's holidays) and the poller falls back to
:func:`is_open` when OpenD does not tell it the market state
(``streams.polling.market_state``). Weekends are closed; exchange holidays and half
days are not in this table: OpenD's own market state covers them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from streams.opend.security import MARKET_TZ

_H = 3600
# Regular trading sessions, seconds after local midnight.
SESSIONS: dict[str, tuple[tuple[int, int], ...]] = {
    "HK": ((9 * _H + 1800, 12 * _H), (13 * _H, 16 * _H)),
    "US": ((9 * _H + 1800, 16 * _H),),
    "SH": ((9 * _H + 1800, 11 * _H + 1800), (13 * _H, 15 * _H)),
    "SZ": ((9 * _H + 1800, 11 * _H + 1800), (13 * _H, 15 * _H)),
}


def trading_sessions(market: str, t: float) -> tuple[str, list[tuple[float, float]]]:
    """Market-local date of t and that day's sessions as epoch intervals (none on weekends)."""
    tz = ZoneInfo(MARKET_TZ[market])
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
    """Whether epoch time t falls in a regular session of the market (HK, US, SH, SZ)."""
    if market not in SESSIONS:
        return False
    return any(o <= t < c for o, c in trading_sessions(market, t)[1])


def next_open(market: str, t: float) -> float:
    """The next session start at or after t (searches up to two weeks ahead)."""
    for days in range(15):
        _day, sessions = trading_sessions(market, t + days * 86400)
        for o, c in sessions:
            if t < c:
                return max(o, t)
    raise ValueError(f"no session for {market} within two weeks of {t}")
