"""Capital-flow history (OpenD 3211) per gateway: which security it is spent on, and the fetch.

Each OpenD account has a second budget, for Qot_GetCapitalFlow: one security's minute
series of the day in one request. The flow processor needs it where its state lacks a
level at or before t - W (its flow records then say ``baseline: none``: a worker started
after the open, a hole in polling) and uses it to sharpen R_W where the polls are far
apart. :class:`HistoryPlanner` (pure, on injected clock values) decides, reading the
flow records back like the adaptive scheduler does:

1. securities of which no flow has been read yet, from the end of the watchlist (a
   worker that starts after the open fetches their history before their first
   snapshots need it: the adaptive scheduler polls never-polled securities from the
   front of the list, those whose series is in first, so the two do not race);
2. securities whose latest flow had no baseline, hottest (largest turnover) first,
   asked again after ``refetch_after`` seconds if that did not help;
3. right before a poll (:meth:`HistoryFetcher.before_poll`), when the budget has room:
   a security whose last R_W reached back more than ``sharpen_gap`` seconds before
   t - W (its polls are far apart), or whose flow runs against its regime (a flip may
   come), and that has had no series since its last poll;
4. with ``watch_gap`` set (the gateway's fetcher sets it to ``WATCH_REQUESTS`` of its
   budget's intervals): a security on a side (INFLOW or OUTFLOW, a reversal alert away)
   not looked at, polled or fetched, for ``watch_gap`` seconds, the longest unseen
   first. Its series tells the adaptive scheduler the rate of L between two polls, so
   a reversal's approach poll comes when R_W crosses, not at the next routine poll.

Otherwise the budget is not spent. :class:`HistoryFetcher` makes the request within the
budget, publishes the series on ``capflow.capitalflow.v1`` (acknowledged by Kafka),
hands its minute levels to the gateway's scheduler (``on_series``) and remembers its
receive time: every snapshot polled after it names it (``capital_flow_ref_ms``), so the
processor folds it in right before the first of them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.domain.capital_flow import CapitalFlow, capital_flow_to_proto
from streams.domain.validation import InvalidSnapshot
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
from streams.polling.health import GatewayHealth, cause_of
from streams.timing.ratelimit import SlidingWindowLimiter

log = logging.getLogger(__name__)

PROTOCOL = "3211"
_SIDES = {"INFLOW": 1.0, "OUTFLOW": -1.0}
# A security on a side is watched when it was not looked at for this many of the
# capital-flow budget's request intervals (30 s at OpenD's 30 per 30 s).
WATCH_REQUESTS = 30
IDLE_S = 0.5  # the background loop's longest sleep when nothing is to be fetched


class CapitalFlowSource(Protocol):
    """What the fetcher needs of an OpenD client."""

    @property
    def source(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    async def get_capital_flow(
        self, security: str, timeout: float | None = None
    ) -> CapitalFlow: ...


Publish = Callable[[str, bytes], Awaitable[None]]


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class _Track:
    """What the planner knows of one security."""

    day: str | None = None
    seen: bool = False  # a flow of the current day was read
    needs_since: float | None = None  # poller time the latest flow said "no baseline"
    turnover: float = 0.0  # of the latest flow: how hot the security is
    gap: float = 0.0  # event seconds the latest baseline lay before t - W
    against: bool = False  # the latest flow runs against its regime
    side: bool = False  # the latest flow's regime is INFLOW or OUTFLOW
    last_fetch: float | None = None
    last_poll: float | None = None


@dataclass
class HistoryPlanner:
    """Which security the gateway's capital-flow budget goes to (see the module docstring).

    ``refetch_after`` and ``watch_gap`` (None: no watching) are seconds of the poller's
    clock, ``sharpen_gap`` of event time; ``clock`` is the poller's (injected by tests).
    """

    refetch_after: float = 60.0
    sharpen_gap: float = 60.0
    watch_gap: float | None = None
    clock: Callable[[], float] = time.time
    _tracks: dict[str, _Track] = field(default_factory=dict)

    def _track(self, security: str) -> _Track:
        track = self._tracks.get(security)
        if track is None:
            track = self._tracks[security] = _Track()
        return track

    def observe_flow(self, security: str, flow: Mapping[str, Any]) -> None:
        """A ``capflow.flow.v1`` record of ``security`` read back from Kafka."""
        track = self._track(security)
        day = flow.get("trading_day")
        if isinstance(day, str) and track.day is not None and day < track.day:
            return  # an earlier day's record, late
        track.day = day if isinstance(day, str) else track.day
        track.seen = True
        track.turnover = _num(flow.get("turnover")) or 0.0
        track.side = flow.get("regime") in _SIDES
        if flow.get("baseline") == "none":
            if track.needs_since is None:
                track.needs_since = self.clock()
            track.gap, track.against = 0.0, False
            return
        track.needs_since = None
        event, window = _num(flow.get("event_ts")), _num(flow.get("window_s"))
        base = _num(flow.get("baseline_ts"))
        if event is not None and window is not None and base is not None:
            track.gap = max(0.0, event - window - base)
        else:
            track.gap = 0.0  # measured against the open: nothing to sharpen
        change = flow.get("change")
        r_w = _num(change.get("large")) if isinstance(change, Mapping) else None
        side = _SIDES.get(str(flow.get("regime")))
        track.against = side is not None and r_w is not None and side * r_w < 0

    def forget(self, security: str) -> None:
        """Left the watchlist: if it comes back, its history is fetched first again."""
        self._tracks.pop(security, None)

    def polled(self, security: str, now: float) -> None:
        """A capital-distribution reply for ``security`` arrived at ``now``."""
        self._track(security).last_poll = now

    def fetched(self, security: str, now: float) -> None:
        """A capital-flow series of ``security`` was published at ``now``."""
        self._track(security).last_fetch = now

    def next(self, due: Sequence[str], now: float) -> str | None:
        """The security the background request goes to among ``due``; None: none now."""
        for security in reversed(due):
            track = self._tracks.get(security)
            if track is None or (not track.seen and track.last_fetch is None):
                return security
        needs = [s for s in due if self._needs(s, now)]
        if needs:
            return max(needs, key=lambda s: self._tracks[s].turnover)
        return self._watch(due, now)

    def _watch(self, due: Sequence[str], now: float) -> str | None:
        """Rule 4: the security on a side looked at longest ago, if over ``watch_gap``."""
        if self.watch_gap is None:
            return None
        best: tuple[float, str] | None = None
        for security in due:
            track = self._tracks.get(security)
            if track is None or not track.side or track.needs_since is not None:
                continue
            looks = [t for t in (track.last_poll, track.last_fetch) if t is not None]
            seen = max(looks, default=-math.inf)
            if now - seen >= self.watch_gap and (best is None or seen < best[0]):
                best = (seen, security)
        return None if best is None else best[1]

    def _needs(self, security: str, now: float) -> bool:
        track = self._tracks.get(security)
        if track is None or track.needs_since is None:
            return False
        last = track.last_fetch
        return last is None or last < track.needs_since or now - last >= self.refetch_after

    def wants_before_poll(self, security: str, now: float) -> bool:
        """Whether a series fetched right before polling ``security`` sharpens its R_W."""
        track = self._tracks.get(security)
        if track is None or not track.seen:
            return track is None or track.last_fetch is None
        if self._needs(security, now):
            return True
        if track.last_fetch is not None and (
            track.last_poll is None or track.last_fetch >= track.last_poll
        ):
            return False  # one series since the last poll is enough
        return track.gap > self.sharpen_gap or track.against

    def waiting(self, now: float | None = None) -> list[str]:
        """Securities whose latest flow had no baseline: they wait for history."""
        return sorted(s for s, t in self._tracks.items() if t.needs_since is not None)


class Counts(Protocol):
    """Requests of one protocol by outcome (the poller's and the fetcher's stats)."""

    requests: int
    ok: int
    rate_limited: int
    errors: int
    rejected: int
    invalid: int


def request_counts(stats: Counts) -> dict[str, int]:
    """Requests by outcome, as ``/status/`` and the metrics show them."""
    return {
        "total": stats.requests,
        "ok": stats.ok,
        "rate_limited": stats.rate_limited,
        "error": stats.errors,
        "rejected": stats.rejected,
        "invalid": stats.invalid,
    }


@dataclass
class HistoryStats:
    """Capital-flow requests of one gateway, by outcome (``/status/`` and metrics)."""

    requests: int = 0
    ok: int = 0
    rate_limited: int = 0
    errors: int = 0
    rejected: int = 0
    invalid: int = 0
    published: int = 0
    before_poll: int = 0  # of the requests, those made right before a poll


class HistoryFetcher:
    """One gateway's capital-flow requests: its own limiter, the planner, the publisher."""

    def __init__(
        self,
        client: CapitalFlowSource,
        publish: Publish,
        limiter: SlidingWindowLimiter,
        planner: HistoryPlanner | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        idle: float | None = None,
        health: GatewayHealth | None = None,
    ) -> None:
        """``health`` (the gateway's) counts the failures that are not one security's.
        Without ``planner`` it makes one that watches securities on a side when the
        limiter paces its requests (``WATCH_REQUESTS`` of its intervals); ``idle``
        defaults to that interval (``IDLE_S`` at most)."""
        self.client = client
        self.publish = publish
        self.limiter = limiter
        if planner is None:
            watch = WATCH_REQUESTS * limiter.spacing if limiter.spacing > 0 else None
            planner = HistoryPlanner(clock=wall_clock, watch_gap=watch)
        self.planner = planner
        # Told of each series published (the poller hands it to its scheduler).
        self.on_series: Callable[[CapitalFlow], None] | None = None
        self.wall_clock = wall_clock
        self.sleep = sleep
        # Between looks when nothing is to be fetched (not connected yet, say): at most
        # one request interval of the budget, so a start-up wastes no slot of it.
        self.idle = idle if idle is not None else min(IDLE_S, limiter.spacing or IDLE_S)
        self.health = health
        self.stats = HistoryStats()
        self.refs: dict[str, int] = {}  # security -> received_at_ms of its latest series
        self._seq = itertools.count(1)

    def forget(self, security: str) -> None:
        """Left the watchlist: no plan and no series of it is kept (a snapshot after it
        comes back names only a series fetched after that)."""
        self.planner.forget(security)
        self.refs.pop(security, None)

    def ref(self, security: str) -> int:
        """The receive time of the latest series of ``security`` published (0: none)."""
        return self.refs.get(security, 0)

    async def before_poll(self, security: str) -> None:
        """Fetch a series for ``security`` now if it sharpens the coming poll and the
        budget has room at once (a poll never waits for this budget)."""
        now = self.wall_clock()
        if not self.client.connected or not self.planner.wants_before_poll(security, now):
            return
        if self.limiter.try_acquire():
            self.stats.before_poll += 1
            await self.fetch(security)

    async def run(self, due: Callable[[float], list[str]], may_send: Callable[[], bool]) -> None:
        """Spend the budget on the planner's choices while ``may_send`` (until cancelled)."""
        while True:
            now = self.wall_clock()
            choice = (
                self.planner.next(due(now), now) if may_send() and self.client.connected else None
            )
            if choice is None:
                await self.sleep(self.idle)
                continue
            await self.limiter.acquire(self.sleep)
            # Still due after the wait: the watchlist may have dropped it meanwhile.
            if may_send() and self.client.connected and choice in due(self.wall_clock()):
                await self.fetch(choice)

    async def fetch(self, security: str) -> bool:
        """One request (the budget already acquired): publish the series; False on failure."""
        self.stats.requests += 1
        try:
            series = await self.client.get_capital_flow(security)
        except RateLimitError as exc:
            self.stats.rate_limited += 1
            self._count("rate_limited")
            self.limiter.penalize()
            log.warning("capital flow rate limited by OpenD (%s); waiting a full window", exc)
            return False
        except (UnknownSecurityError, UnsupportedSecurityError, NoQuoteRightError) as exc:
            self.stats.rejected += 1
            self._count("rejected")
            self.planner.fetched(security, self.wall_clock())  # not again before refetch_after
            log.warning("no capital flow for %s: %s", security, exc)
            return False
        except InvalidSnapshot as exc:
            self.stats.invalid += 1
            self._count("invalid")
            self.planner.fetched(security, self.wall_clock())
            log.warning("invalid capital flow reply for %s: %s", security, exc.detail)
            return False
        except (ConnectionLost, RequestTimeout, ServerTimeoutError, OpenDError, OSError) as exc:
            self.stats.errors += 1
            self._count("error")
            if self.health is not None:
                self.health.failed(security, cause_of(exc), f"capital flow {security}: {exc}")
            log.warning("capital flow request for %s failed: %s", security, exc)
            return False
        received = self.wall_clock()
        received_ms = int(received * 1000)
        record = capital_flow_to_proto(series, self.client.source, received_ms, next(self._seq))
        await self.publish(security, record.SerializeToString())
        self.stats.ok += 1
        self.stats.published += 1
        self._count("ok")
        self.refs[security] = received_ms
        self.planner.fetched(security, received)
        if self.on_series is not None:
            self.on_series(series)
        return True

    def _count(self, outcome: str) -> None:
        OPEND_REQUESTS.labels(PROTOCOL, outcome).inc()

    def describe(self, owned: bool = True) -> dict[str, Any]:
        """This gateway's capital-flow side for ``/status/`` and metrics."""
        return {
            "budget": self.limiter.view(owned),
            "requests": {**request_counts(self.stats), "before_poll": self.stats.before_poll},
            "waiting_for_history": self.planner.waiting(),
        }
