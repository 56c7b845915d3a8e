"""The simulator's exchange calendar: the static hours table plus a scenario's holidays.

``streams.domain.market`` knows weekdays and regular sessions only; a real OpenD also
knows holidays and half days. A scenario lists them per market, so the simulator's
market model, GetGlobalState and open/close pushes all agree, and a poller that asks
OpenD for market state can be tested against days the static table gets wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from streams.domain.market import SESSIONS, trading_sessions, zone

# Qot_Common.QotMarketState values the simulator reports.
STATE_NONE = 0
STATE_WAITING_OPEN = 2
STATE_MORNING = 3
STATE_REST = 4
STATE_AFTERNOON = 5
STATE_CLOSED = 6


@dataclass(frozen=True)
class Calendar:
    """Holidays (no session) and half days (closing at a local time) per market."""

    holidays: Mapping[str, frozenset[str]] = field(default_factory=dict)  # market -> days
    half_days: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # -> day -> s

    def sessions(self, market: str, t: float) -> tuple[str, list[tuple[float, float]]]:
        """Like ``streams.domain.market.trading_sessions``, but empty on holidays and cut
        on half days."""
        day, sessions = trading_sessions(market, t)
        if day in self.holidays.get(market, ()):
            return day, []
        close_at = self.half_days.get(market, {}).get(day)
        if close_at is not None and sessions:
            tz = zone(market)
            local = datetime.fromtimestamp(t, tz)
            cut = datetime(local.year, local.month, local.day, tzinfo=tz).timestamp() + close_at
            sessions = [(o, min(c, cut)) for o, c in sessions if o < cut]
        return day, sessions

    def state(self, market: str, t: float) -> int:
        """The QotMarketState OpenD would report for ``market`` at ``t``."""
        if market not in SESSIONS:
            return STATE_NONE
        _day, sessions = self.sessions(market, t)
        if not sessions or t >= sessions[-1][1]:
            return STATE_CLOSED
        if t < sessions[0][0]:
            return STATE_WAITING_OPEN
        for i, (open_, close) in enumerate(sessions):
            if open_ <= t < close:
                return STATE_MORNING if i == 0 and len(sessions) > 1 else STATE_AFTERNOON
        return STATE_REST

    def is_open(self, market: str, t: float) -> bool:
        return self.state(market, t) in (STATE_MORNING, STATE_AFTERNOON)

    def last_trade(self, market: str, t: float) -> float | None:
        """The last second of trading at or before ``t`` on t's local day (None before the open)."""
        _day, sessions = self.sessions(market, t)
        last: float | None = None
        for open_, close in sessions:
            if open_ <= t:
                last = min(t, close)
        return last
