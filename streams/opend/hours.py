"""Regular trading hours per market, in market-local time.

The sessions are part of the market table in :mod:`streams.domain.market`; this module
keeps the names the simulator and the poller import.
"""

from __future__ import annotations

from streams.domain.market import SESSIONS, is_open, next_open, trading_sessions

__all__ = ["SESSIONS", "is_open", "next_open", "trading_sessions"]
