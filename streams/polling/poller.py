"""The poller: one OpenD request at a time over the open part of the watchlist.

Which security each request goes to is the scheduler's choice (``scheduler.py``:
round-robin, or adaptive), among the securities that are due.

Budget: every request passes the sliding-window limiter first, so no window of
``rate_limit_window`` seconds holds more than ``rate_limit_requests`` requests; when
markets are open the loop requests as fast as the limiter admits (the budget is used
fully), when all are closed it sleeps until the next open and spends nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from streams.metrics import OPEND_REQUESTS
from streams.opend import hours
from streams.opend.errors import (
    ConnectionLost,
    OpenDError,
    RateLimitError,
    RequestTimeout,
    UnknownSecurityError,
    UnsupportedSecurityError,
)
from streams.opend.security import SecurityFormatError
from streams.opend.snapshot import CapitalDistribution, snapshot_to_proto
from streams.polling.scheduler import RoundRobin, Scheduler
from streams.ratelimit import SlidingWindowLimiter

log = logging.getLogger(__name__)


class DistributionSource(Protocol):
    """What the poller needs of an OpenD client."""

    @property
    def source(self) -> str: ...

    async def ensure_connected(self, max_attempts: int | None = None) -> None: ...

    async def get_capital_distribution(
        self, security: str, timeout: float | None = None
    ) -> CapitalDistribution: ...


Publish = Callable[[str, bytes], Awaitable[None]]


@dataclass
class PollStats:
    """Counters for logs, metrics and tests."""

    requests: int = 0
    ok: int = 0
    rate_limited: int = 0
    errors: int = 0
    published: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # security -> reason
    last_received: dict[str, float] = field(default_factory=dict)  # security -> epoch s


class Poller:
    """Fetches the watchlist within the budget and hands each snapshot to ``publish``."""

    def __init__(
        self,
        client: DistributionSource,
        publish: Publish,
        watchlist: list[str],
        limiter: SlidingWindowLimiter,
        *,
        ignore_market_hours: bool = False,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        scheduler: Scheduler | None = None,
    ) -> None:
        if not watchlist:
            raise ValueError("the watchlist is empty: set CAPFLOW_WATCHLIST or --watchlist")
        self.client = client
        self.publish = publish
        self.watchlist = list(dict.fromkeys(watchlist))
        self.limiter = limiter
        self.ignore_market_hours = ignore_market_hours
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.stats = PollStats()
        self._seq = itertools.count(1)
        self.scheduler: Scheduler = scheduler if scheduler is not None else RoundRobin()

    def active(self) -> list[str]:
        return [s for s in self.watchlist if s not in self.stats.skipped]

    def due(self, now: float) -> list[str]:
        """Securities to poll now: active ones whose market is open (or has unknown hours)."""
        active = self.active()
        if self.ignore_market_hours:
            return active
        return [s for s in active if _market_open(s, now)]

    def _next(self, due: list[str], now: float) -> str | None:
        return self.scheduler.next(due, now)

    async def step(self, still_leader: Callable[[], bool] | None = None) -> str | None:
        """One poll (or one wait when nothing is due); returns the security polled.

        ``still_leader`` is asked again after waiting for the budget: leadership can move
        to another worker during that wait, and then this one must not send.
        """
        now = self.wall_clock()
        due = self.due(now)
        if not due:
            active = self.active()
            if not active:
                log.error("no security left to poll: all were rejected by OpenD")
                await self.sleep(60.0)
                return None
            wait = min(hours.next_open(_market(s), now) for s in active) - now
            log.info("all markets of the watchlist are closed; next open in %.0fs", wait)
            await self.sleep(min(max(wait, 1.0), 60.0))
            return None
        security = self._next(due, now)
        if security is None:
            await self.sleep(self.limiter.spacing or 0.1)  # the scheduler passes this turn
            return None
        await self.client.ensure_connected()
        await self.limiter.acquire(self.sleep)
        if still_leader is not None and not still_leader():
            return None
        self.stats.requests += 1
        try:
            dist = await self.client.get_capital_distribution(security)
        except RateLimitError as exc:
            # OpenD counted more than we did (another client on the account?): back off a window.
            self.stats.rate_limited += 1
            OPEND_REQUESTS.labels("rate_limited").inc()
            self.limiter.penalize()
            log.warning("rate limited by OpenD (%s); waiting a full window", exc)
            return security
        except (UnknownSecurityError, UnsupportedSecurityError, SecurityFormatError) as exc:
            self.stats.skipped[security] = str(exc)
            OPEND_REQUESTS.labels("rejected").inc()
            log.error("skipping %s from now on: %s", security, exc)
            return security
        except (ConnectionLost, RequestTimeout, OSError, OpenDError) as exc:
            self.stats.errors += 1
            OPEND_REQUESTS.labels("error").inc()
            log.warning("request for %s failed: %s", security, exc)
            return security
        self.stats.ok += 1
        OPEND_REQUESTS.labels("ok").inc()
        received = self.wall_clock()
        self.stats.last_received[security] = received
        self.scheduler.polled(security, received)
        record = snapshot_to_proto(dist, self.client.source, int(received * 1000), next(self._seq))
        await self.publish(security, record.SerializeToString())
        self.stats.published += 1
        return security


def _market(security: str) -> str:
    return security.split(".", 1)[0].upper()


def _market_open(security: str, now: float) -> bool:
    market = _market(security)
    return market not in hours.SESSIONS or hours.is_open(market, now)


async def run_while_leader(
    poller: Poller,
    is_leader: Callable[[], bool],
    *,
    handover_grace: bool = True,
    idle: float = 0.5,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Poll only while this worker leads the group; forever.

    On becoming leader the limiter starts full: a previous leader may have spent the
    window just before it stopped, and OpenD counts per account, not per worker.
    """
    leading = False
    while True:
        if not is_leader():
            if leading:
                log.info("no longer the leader: polling stops here")
                leading = False
            await sleep(idle)
            continue
        if not leading:
            leading = True
            if handover_grace:
                poller.limiter.penalize()
            log.info("leader: polling %d securities", len(poller.active()))
        await poller.step(is_leader)
