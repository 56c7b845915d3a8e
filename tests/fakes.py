"""Fakes the tests share: a hand-driven clock (and one for tasks sleeping side by side),
an OpenD that answers from memory, and a poller wired to them. ``tests/unit/conftest.py``
offers the common ones as fixtures."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from streams.opend.errors import (
    ConnectionLost,
    NoQuoteRightError,
    OpenDError,
    RateLimitError,
    UnknownSecurityError,
)
from streams.opend.snapshot import CapitalDistribution
from streams.pb.opend import Qot_GetCapitalDistribution_pb2 as capdist_pb
from streams.polling.poller import Poller
from streams.timing.ratelimit import SlidingWindowLimiter

HK_OPEN = datetime(2026, 11, 24, 2, 0, tzinfo=UTC).timestamp()  # Tuesday 10:00 HKT: US closed
WEEKEND = datetime(2026, 11, 28, 2, 0, tzinfo=UTC).timestamp()  # Saturday: every market closed


class Done(Exception):
    """Raised by :meth:`FakeClock.sleep` once the clock has passed its ``end``."""


class FakeClock:
    """A wall clock that moves only when the code under test sleeps (or a test sets ``now``).

    Calling it reads the time; ``sleep`` records the delay, moves the clock, and yields
    to the event loop so other tasks on the fake time run too. With ``end`` set, a sleep
    that passes it raises :class:`Done`, which ends loops that never return on their own.
    """

    def __init__(self, now: float = HK_OPEN, end: float | None = None) -> None:
        self.now = now
        self.end = end
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"asked to sleep {seconds} s"
        self.sleeps.append(seconds)
        self.now += seconds
        if self.end is not None and self.now > self.end:
            raise Done
        await asyncio.sleep(0)


class DeadlineClock(FakeClock):
    """A :class:`FakeClock` for tasks that sleep side by side (a pool's pollers beside its
    health timer): each sleep returns once every task that can run has run and the time
    has reached its own deadline, so the tasks wake in deadline order, as in real time,
    without waiting. (On a plain FakeClock every sleep moves the shared time by its own
    delay, which is right for one sleeper only.)"""

    def __init__(self, now: float = HK_OPEN, end: float | None = None) -> None:
        super().__init__(now, end)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"asked to sleep {seconds} s"
        self.sleeps.append(seconds)
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), wake))
        if self._driver is None or self._driver.done():
            self._driver = loop.create_task(self._drive())
        await wake
        if self.end is not None and self.now > self.end:
            raise Done

    async def _drive(self) -> None:
        while self._sleepers:
            for _ in range(10):  # let every task that can run get to its next sleep
                await asyncio.sleep(0)
            deadline, _, wake = heapq.heappop(self._sleepers)
            if not wake.done():
                self.now = max(self.now, deadline)
                wake.set_result(None)


def distribution(security: str, now: float) -> CapitalDistribution:
    """A valid reply for ``security`` stamped ``now``; every amount fixed (large net +1.0)."""
    market, code = security.split(".")
    return CapitalDistribution(
        security=security, market=market, qot_market=1, code=code,
        capital_in_super=1.0, capital_in_big=2.0, capital_in_mid=3.0, capital_in_small=4.0,
        capital_out_super=0.5, capital_out_big=1.5, capital_out_mid=2.5, capital_out_small=3.5,
        update_time="2026-11-24 10:00:00", update_timestamp=now,
    )  # fmt: skip


Scripted = Exception | capdist_pb.S2C


class FakeOpenD:
    """The OpenD client's contract, answered from memory on a :class:`FakeClock`.

    Every security gets :func:`distribution`, except what a test scripts: a list of
    answers per security (an exception to raise, or a wire S2C read as the real client
    reads it), consumed in order; securities OpenD does not know, or that the account
    has no quote right for (``no_right``); the first ``limited`` requests refused for
    the rate limit; while ``failing`` (an error message), an error reply that names no
    security for every request (OpenD up, its requests failing); or, while ``refusing``,
    no connection at all. Each request is kept in ``requests`` as (clock time, security),
    and those answered with data in ``answered`` too.
    """

    def __init__(
        self,
        clock: FakeClock,
        *,
        label: str = "fake:1",
        script: Mapping[str, Iterable[Scripted]] | None = None,
        unknown: Iterable[str] = (),
        no_right: Iterable[str] = (),
        limited: int = 0,
    ) -> None:
        self.source = f"opend://{label}"
        self.clock = clock
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.unknown = set(unknown)
        self.no_right = set(no_right)
        self.limited = limited
        self.failing: str | None = None
        self.refusing = False
        self.connected = False
        self.requests: list[tuple[float, str]] = []
        self.answered: list[tuple[float, str]] = []

    @property
    def request_times(self) -> list[float]:
        return [t for t, _ in self.requests]

    async def ensure_connected(self, max_attempts: int | None = None) -> None:
        if self.refusing:
            self.connected = False
            raise ConnectionLost(f"{self.source}: connection refused")
        self.connected = True

    async def close(self) -> None:
        self.connected = False

    async def get_capital_distribution(
        self, security: str, timeout: float | None = None
    ) -> CapitalDistribution:
        if self.refusing:
            self.connected = False
            raise ConnectionLost(f"{self.source}: connection reset")
        self.requests.append((self.clock.now, security))
        if self.failing is not None:
            raise OpenDError(-1, 0, self.failing, 3212)
        if self.limited:
            self.limited -= 1
            raise RateLimitError(-1, 0, "frequency limit", 3212)
        if security in self.unknown:
            raise UnknownSecurityError(-1, 0, "unknown stock", 3212)
        if security in self.no_right:
            raise NoQuoteRightError(-1, 0, f"no quote right for {security}", 3212)
        pending = self.script.get(security)
        if pending:
            answer = pending.pop(0)
            if isinstance(answer, Exception):
                raise answer
            reply = CapitalDistribution.from_s2c(
                1, security.split(".")[1], answer, now=self.clock.now
            )
        else:
            reply = distribution(security, self.clock.now)
        self.answered.append((self.clock.now, security))
        return reply


def poller_on(
    clock: FakeClock,
    opend: Any,
    watchlist: list[str],
    *,
    limiter: SlidingWindowLimiter | None = None,
    **kw: Any,
) -> tuple[Poller, list[tuple[str, bytes]]]:
    """A poller on the fake clock (30 requests per 30 s unless ``limiter`` is given) and
    the list it publishes (key, value) to."""
    published: list[tuple[str, bytes]] = []

    async def publish(key: str, value: bytes) -> None:
        published.append((key, value))

    limiter = limiter or SlidingWindowLimiter(30, 30.0, clock)
    poller = Poller(opend, publish, watchlist, limiter, wall_clock=clock, sleep=clock.sleep, **kw)
    return poller, published
