"""Regular trading hours per market, in market-local time.

The sessions are part of the market table in :mod:`streams.domain.market`; this module
keeps the names the simulator and the poller import.

Capital distribution only counts regular hours; the simulator integrates flows over
these sessions (minus its scenario's holidays) and the poller falls back to
:func:`is_open` when OpenD does not tell it the market state
(``streams.polling.market_state``). Weekends are closed; exchange holidays and half
days are not in this table: OpenD's own market state covers them.
"""

from __future__ import annotations

from streams.domain.market import SESSIONS, is_open, next_open, trading_sessions

__all__ = ["SESSIONS", "is_open", "next_open", "trading_sessions"]
