"""The poller: one OpenD request at a time, among the open part of its share of the watchlist.

Which security each request goes to is the scheduler's choice (``scheduler.py``:
round-robin, or adaptive), among the securities that are due; which securities are
its share is the gateway pool's (``share``: the ones the spread gives this poller's
gateway).

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
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.domain.capital_flow import CapitalFlow
from streams.domain.market import SESSIONS, SecurityFormatError, market_of, may_be_open, next_open
from streams.observability.metrics import OPEND_REQUESTS
from streams.opend.errors import (
    ConnectionLost,
    NoQuoteRightError,
    OpenDError,
    RateLimitError,
    RequestTimeout,
    ServerTimeoutError,
    UnknownSecurityError,
    UnsupportedSecurityError,
)
from streams.opend.snapshot import CapitalDistribution, InvalidSnapshot, snapshot_to_proto
from streams.polling import rejections
from streams.polling.health import SICK, GatewayHealth, cause_of
from streams.polling.history import HistoryFetcher
from streams.polling.market_state import MarketState
from streams.polling.scheduler import RoundRobin, Scheduler
from streams.timing.ratelimit import SlidingWindowLimiter

log = logging.getLogger(__name__)

PROTOCOL = "3212"  # the capital-distribution requests this poller makes


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
    rejected: int = 0  # refusals (unknown, unsupported, no quote right): backed off
    invalid: int = 0  # replies that failed snapshot validation
    published: int = 0
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
        market_state: MarketState | None = None,
        scheduler: Scheduler | None = None,
        share: Callable[[], Collection[str]] | None = None,
        connect_attempts: int | None = None,
        history: HistoryFetcher | None = None,
        health: GatewayHealth | None = None,
    ) -> None:
        """``market_state``: OpenD's own market states (static hours when None);
        ``share`` restricts polling to the securities it returns (None: all of them);
        ``connect_attempts`` makes a refused connection raise ConnectionLost out of
        :meth:`step` instead of retrying forever, so a pool can mark the gateway down;
        ``history`` (the gateway's capital-flow side) may fetch a security's minute
        series right before it is polled, and each snapshot names the latest series;
        ``health`` (the gateway's) is told of failures that are not one security's and
        of replies with data."""
        if not watchlist and share is None:  # a pool's poller may wait for its first list
            raise ValueError("the watchlist is empty: set CAPFLOW_WATCHLIST or --watchlist")
        self.client = client
        self.publish = publish
        self.watchlist = list(dict.fromkeys(watchlist))
        self.limiter = limiter
        self.ignore_market_hours = ignore_market_hours
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.scheduler: Scheduler = scheduler if scheduler is not None else RoundRobin()
        self.share = share
        self.connect_attempts = connect_attempts
        self.history = history
        if history is not None:
            history.on_series = self._series_fetched
        self.health = health
        self.idle = 0.5
        self.stats = PollStats()
        self.rejections = rejections.RejectionTracker()  # refused securities, retried later
        self.market_state = market_state
        self._error_streak = 0  # unexplained OpenD errors in a row, any security
        self._seq = itertools.count(1)
        self._logged: set[tuple[str, str]] = set()  # (security, reason) already logged

    def set_watchlist(self, watchlist: Sequence[str]) -> list[str]:
        """Poll ``watchlist`` from now on (it is live); returns the securities it no longer
        holds, of which nothing is kept (refusals, last reply, the scheduler's and the
        history planner's state): one added again starts as a new security."""
        new = list(dict.fromkeys(watchlist))
        kept = set(new)
        removed = [s for s in self.watchlist if s not in kept]
        self.watchlist = new
        for security in removed:
            self.rejections.forget(security)
            self.stats.last_received.pop(security, None)
            self.scheduler.forget(security)
            if self.history is not None:
                self.history.forget(security)
        return removed

    def _series_fetched(self, series: CapitalFlow) -> None:
        """A capital-flow series of this gateway: its minutes tell the scheduler too."""
        levels = series.large_net_levels()
        self.scheduler.observe_minutes(series.security, series.trading_day, levels)

    def active(self, now: float | None = None) -> list[str]:
        """Securities of this poller's share not backed off after a refusal at ``now``."""
        at = self.wall_clock() if now is None else now
        mine = None if self.share is None else set(self.share())
        return [
            s
            for s in self.watchlist
            if (mine is None or s in mine) and not self.rejections.blocked(s, at)
        ]

    def due(self, now: float) -> list[str]:
        """Securities to poll now: active ones whose market is open (or has unknown hours)."""
        active = self.active(now)
        if self.ignore_market_hours:
            return active
        return [s for s in active if self._market_open(s, now)]

    def probe_choices(self, securities: Collection[str], now: float) -> list[str]:
        """Of ``securities``, those a probe of the gateway may ask at ``now``: market open,
        no refusal of their own (an error backoff does not count: the gateway's fault)."""
        wanted = set(securities)
        return [
            s
            for s in self.watchlist
            if s in wanted
            and not self.rejections.refused(s)
            and (self.ignore_market_hours or self._market_open(s, now))
        ]

    def status(self, now: float | None = None) -> dict[str, object]:
        """For the worker's status view: refused securities and market states."""
        at = self.wall_clock() if now is None else now
        return {
            "watchlist": list(self.watchlist),
            "active": self.active(at),
            "rejected": [entry.as_dict(at) for entry in self.rejections.entries()],
            "markets": self.market_state.status(at) if self.market_state is not None else None,
        }

    def _market_open(self, security: str, now: float) -> bool:
        market = market_of(security)
        if self.market_state is not None and market in SESSIONS:
            return self.market_state.is_open(market, now)
        return may_be_open(security, now)

    async def step(self, still_leader: Callable[[], bool] | None = None) -> str | None:
        """One poll (or one wait when nothing is due); returns the security polled.

        ``still_leader`` (is this worker still the gateway's owner?) is asked again after
        waiting for the budget: ownership can move to another worker during that wait,
        and then this one must not send.
        """
        now = self.wall_clock()
        if self.market_state is not None and not self.ignore_market_hours:
            await self.market_state.refresh_if_due(now)
        due = self.due(now)
        if not due:
            await self.sleep(self._idle_wait(now))
            return None
        security = self.scheduler.next(due, now)
        if security is None:
            await self.sleep(self.limiter.spacing or 0.1)  # the scheduler passes this turn
            return None
        await self.client.ensure_connected(self.connect_attempts)
        if self.history is not None and (still_leader is None or still_leader()):
            # Before the budget wait: a request is sent right after its slot, never later.
            await self.history.before_poll(security)
        await self.limiter.acquire(self.sleep)
        if still_leader is not None and not still_leader():
            return None
        if security not in self.watchlist:  # removed from the live watchlist meanwhile
            return None
        if self.share is not None and security not in self.share():
            return None  # moved to another gateway during the wait (this one went sick?)
        await self.request(security)
        return security

    def _idle_wait(self, now: float) -> float:
        """How long to sleep when nothing is due at ``now``, and why (logged)."""
        active = self.active(now)
        if not active and self.share is not None and self._unblocked(now):
            return self.idle  # the spread gives this gateway nothing now
        if not active:
            retry = self.rejections.next_retry()
            wait = 60.0 if retry is None else retry - now
            log.warning("every security is backed off after refusals; retry in %.0fs", wait)
            return min(max(wait, 1.0), 60.0)
        wait = min(next_open(market_of(s), now) for s in active) - now
        if self.market_state is not None:
            wait = min(wait, self.market_state.next_attempt - now)
        log.info("all markets of the watchlist are closed; next open in %.0fs", wait)
        return min(max(wait, 1.0), 60.0)

    async def request(self, security: str) -> bool:
        """One capital-distribution request (its budget already acquired): the snapshot
        is published; a failure is counted and handled by its kind. True on data."""
        self.stats.requests += 1
        try:
            dist = await self.client.get_capital_distribution(security)
        except RateLimitError as exc:
            self._rate_limited(exc)
        except _REFUSALS as exc:
            self._refused(security, exc)
        except (ConnectionLost, RequestTimeout, ServerTimeoutError, OSError) as exc:
            # The connection or OpenD failed, not this security: nothing to back off.
            self._count_error("error")
            self._gateway_failed(security, exc)
            log.warning("request for %s failed: %s", security, exc)
        except OpenDError as exc:
            self._unexplained(security, exc)
        except InvalidSnapshot as exc:
            # Not data: never published; the next poll may well be fine.
            self.stats.invalid += 1
            OPEND_REQUESTS.labels(PROTOCOL, "invalid").inc()
            self._log_once(security, exc.rule, "invalid reply for %s: %s", security, exc.detail)
        except Exception as exc:  # one bad reply must not stop the poller
            self._count_error("unexpected")
            name = type(exc).__name__
            self._log_once(
                security, name, "request for %s failed unexpectedly", security, exc_info=True
            )
        else:
            await self._received(security, dist)
            return True
        return False

    def _count_error(self, outcome: str) -> None:
        self.stats.errors += 1
        OPEND_REQUESTS.labels(PROTOCOL, outcome).inc()

    def _gateway_failed(self, security: str, exc: Exception) -> None:
        """A failure that may be the gateway's: its health counts it (refusals never come here)."""
        if self.health is not None:
            self.health.failed(security, cause_of(exc), f"capital distribution {security}: {exc}")

    def _rate_limited(self, exc: RateLimitError) -> None:
        """OpenD counted more than we did (another client on the account?): back off a window."""
        self.stats.rate_limited += 1
        OPEND_REQUESTS.labels(PROTOCOL, "rate_limited").inc()
        self.limiter.penalize()
        log.warning("rate limited by OpenD (%s); waiting a full window", exc)

    def _refused(self, security: str, exc: Exception) -> None:
        """OpenD refused this security (unknown, unsupported, no quote right): back it off."""
        kind = _REJECTION_KIND.get(type(exc), rejections.UNKNOWN)
        at = self.wall_clock()
        entry = self.rejections.reject(security, kind, str(exc), at)
        self.stats.rejected += 1
        OPEND_REQUESTS.labels(PROTOCOL, "rejected").inc()
        log.error(
            "skipping %s for %.0fs (%s, %d in a row): %s",
            security,
            entry.retry_at - at,
            kind,
            entry.count,
            exc,
        )

    def _unexplained(self, security: str, exc: OpenDError) -> None:
        """An error OpenD gave no known reason for: retried, then backed off per security."""
        self._count_error("error")
        self._gateway_failed(security, exc)
        if self.health is not None and self.health.state == SICK:
            log.info("probe with %s failed: %s", security, exc)  # the gateway's, not its
            return
        at = self.wall_clock()
        entry = self.rejections.error(security, str(exc), at)
        self._error_streak += 1
        if self._error_streak >= ERROR_STREAK_PAUSE:
            # Unexplained failures across securities look like OpenD-wide trouble
            # (a rate limit in words we do not know?): wait a full window.
            self.limiter.penalize()
            self._error_streak = 0
        log.warning(
            "request for %s failed (%d in a row): %s%s",
            security,
            entry.count,
            exc,
            f"; asking again in {entry.retry_at - at:.0f}s" if entry.retry_at > at else "",
        )

    async def _received(self, security: str, dist: CapitalDistribution) -> None:
        """A reply with data: the security is in good standing; publish its snapshot."""
        self.rejections.success(security)
        self._error_streak = 0
        self.stats.ok += 1
        OPEND_REQUESTS.labels(PROTOCOL, "ok").inc()
        received = self.wall_clock()
        fault = self.health.answered() if self.health is not None else None
        if fault is not None:
            # The gateway is well again: the backoffs its fault set go (a margin for the
            # two clocks), so its securities are asked at once, not 30-120 s later.
            cleared = self.rejections.clear_errors(received - fault - 1.0)
            log.info("gateway answers again after %.0fs; backoffs cleared: %s", fault, cleared)
        self.stats.last_received[security] = received
        self.scheduler.polled(security, received)
        ref = 0
        if self.history is not None:
            self.history.planner.polled(security, received)
            ref = self.history.ref(security)
        record = snapshot_to_proto(
            dist, self.client.source, int(received * 1000), next(self._seq), ref
        )
        await self.publish(security, record.SerializeToString())
        self.stats.published += 1

    def _unblocked(self, now: float) -> bool:
        """Whether any security of the whole watchlist is not backed off at ``now``."""
        return any(not self.rejections.blocked(s, now) for s in self.watchlist)

    def _log_once(self, security: str, reason: str, msg: str, *args: object, **kw: Any) -> None:
        """Log a failure the first time it happens for this security and reason only."""
        if (security, reason) not in self._logged:
            self._logged.add((security, reason))
            log.error(msg, *args, **kw)


ERROR_STREAK_PAUSE = 3  # unexplained errors in a row before a full-window pause

_REFUSALS = (UnknownSecurityError, UnsupportedSecurityError, NoQuoteRightError, SecurityFormatError)
_REJECTION_KIND: dict[type[Exception], str] = {
    UnknownSecurityError: rejections.UNKNOWN,
    SecurityFormatError: rejections.UNKNOWN,
    UnsupportedSecurityError: rejections.UNSUPPORTED,
    NoQuoteRightError: rejections.NO_QUOTE_RIGHT,
}
