"""Each market's state as OpenD reports it (GetGlobalState), with the static hours as fallback.

The static table (``streams.domain.market``) knows weekdays and regular sessions, not
holidays or half days; OpenD knows both. So the poller asks OpenD every few minutes
(and at once after OpenD pushes a Notify, which it does when a market opens or
closes) and trusts its answer: Morning and Afternoon are open, every other state
(waiting, lunch, closed, auctions, pre/after hours) is closed, and no budget is
spent then. When OpenD does not answer, or its answer is too old, or a market's
state is unknown (0 or absent), the static table decides.

The refresh is async (one request to OpenD); everything else is pure logic on an
injected clock value.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from streams.domain.market import is_open
from streams.opend import framing
from streams.opend.client import OpenDClient, describe_push
from streams.opend.errors import ConnectionLost, OpenDError, RequestTimeout

log = logging.getLogger(__name__)

# Qot_Common.QotMarketState values of regular trading (capital distribution counts only these).
STATE_NONE = 0
STATE_MORNING = 3
STATE_AFTERNOON = 5
OPEN_STATES: frozenset[int] = frozenset({STATE_MORNING, STATE_AFTERNOON})

# GetGlobalState field per market code.
GLOBAL_STATE_FIELDS: dict[str, str] = {
    "HK": "marketHK",
    "US": "marketUS",
    "SH": "marketSH",
    "SZ": "marketSZ",
}

REFRESH_S = 120.0  # ask OpenD this often
RETRY_S = 30.0  # after a failed ask
MAX_AGE_S = 600.0  # an answer older than this is not trusted (static table instead)

FetchStates = Callable[[], Awaitable[Mapping[str, int]]]


def states_from_global_state(s2c: Any) -> dict[str, int]:
    """Market code -> QotMarketState from a GetGlobalState S2C (absent fields left out)."""
    out: dict[str, int] = {}
    for market, name in GLOBAL_STATE_FIELDS.items():
        if s2c.HasField(name):
            out[market] = int(getattr(s2c, name))
    return out


class MarketState:
    """OpenD's market states, refreshed on a schedule; the static hours when it has none."""

    def __init__(
        self,
        fetch: FetchStates,
        *,
        refresh: float = REFRESH_S,
        retry: float = RETRY_S,
        max_age: float = MAX_AGE_S,
        fallback: Callable[[str, float], bool] = is_open,
    ) -> None:
        if refresh <= 0 or retry <= 0 or max_age <= 0:
            raise ValueError("refresh, retry and max_age must be > 0")
        self._fetch = fetch
        self.refresh = refresh
        self.retry = retry
        self.max_age = max_age
        self._fallback = fallback
        self.states: dict[str, int] = {}
        self.fetched_at: float | None = None
        self.next_attempt = 0.0
        self.failures = 0  # failed asks in a row

    def invalidate(self) -> None:
        """Ask OpenD again at the next chance (e.g. after it pushed a Notify)."""
        self.next_attempt = 0.0

    async def refresh_if_due(self, now: float) -> bool:
        """Ask OpenD if the schedule says so; True when a fresh answer arrived."""
        if now < self.next_attempt:
            return False
        try:
            states = dict(await self._fetch())
        except (OpenDError, ConnectionLost, RequestTimeout, OSError) as exc:
            self.failures += 1
            self.next_attempt = now + self.retry
            if self.failures == 1:
                log.warning("OpenD market state unavailable (%s); using the static hours", exc)
            return False
        if self.failures:
            log.info("OpenD market state available again")
        self.failures = 0
        self.states = states
        self.fetched_at = now
        self.next_attempt = now + self.refresh
        return True

    def opend_state(self, market: str, now: float) -> int | None:
        """OpenD's state of ``market`` if known and fresh, else None."""
        if self.fetched_at is None or now - self.fetched_at > self.max_age:
            return None
        state = self.states.get(market)
        return None if state is None or state == STATE_NONE else state

    def is_open(self, market: str, now: float) -> bool:
        """Whether ``market`` is in regular trading at ``now``: OpenD's word, else the table."""
        state = self.opend_state(market, now)
        if state is None:
            return self._fallback(market, now)
        return state in OPEN_STATES

    def source(self, market: str, now: float) -> str:
        """Who decided :meth:`is_open`: "opend" or "hours" (for the status view)."""
        return "hours" if self.opend_state(market, now) is None else "opend"

    def status(self, now: float) -> dict[str, dict[str, object]]:
        """Per market: open, the state number, and where it came from."""
        return {
            market: {
                "open": self.is_open(market, now),
                "state": self.opend_state(market, now),
                "source": self.source(market, now),
            }
            for market in GLOBAL_STATE_FIELDS
        }


def for_client(client: OpenDClient, **kwargs: Any) -> MarketState:
    """A MarketState that asks ``client``'s OpenD, refreshed early when OpenD pushes a Notify."""

    async def fetch() -> dict[str, int]:
        await client.ensure_connected(max_attempts=1)
        return states_from_global_state(await client.get_global_state())

    state = MarketState(fetch, **kwargs)

    def on_push(frame: framing.Frame) -> None:
        log.info("%s: %s", client.source, describe_push(frame))
        if frame.proto_id == framing.PROTO_NOTIFY:
            state.invalidate()  # OpenD notifies when a market opens or closes

    client.on_push = on_push
    return state
