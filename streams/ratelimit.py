"""Sliding-window rate limit: no interval of ``window`` seconds holds more than ``limit`` events.

OpenD counts 30 capital-distribution requests per 30 seconds. A fixed bucket that
resets every 30 s allows 60 requests across a boundary; a sliding window over the
timestamps of the last ``limit`` events does not. The poller uses it to spend the
budget, the simulator uses it to enforce the budget; both take a clock so tests
can drive time by hand.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]


class SlidingWindowLimiter:
    """Admits an event at time t only if fewer than ``limit`` events lie in (t - window, t]."""

    def __init__(self, limit: int, window: float, clock: Clock = time.monotonic) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if window <= 0:
            raise ValueError(f"window must be > 0, got {window}")
        self.limit = limit
        self.window = window
        self.clock = clock
        self._stamps: deque[float] = deque()

    def _expire(self, now: float) -> None:
        # An event at s is inside the window ending at now while now - s < window.
        while self._stamps and now - self._stamps[0] >= self.window:
            self._stamps.popleft()

    def used(self, now: float | None = None) -> int:
        """Events counted in the window ending now."""
        self._expire(self.clock() if now is None else now)
        return len(self._stamps)

    def delay(self, now: float | None = None) -> float:
        """Seconds until one more event would be admitted (0 if now)."""
        now = self.clock() if now is None else now
        self._expire(now)
        if len(self._stamps) < self.limit:
            return 0.0
        return self._stamps[0] + self.window - now

    def try_acquire(self, now: float | None = None) -> bool:
        """Record an event if the window has room; False (and nothing recorded) otherwise."""
        now = self.clock() if now is None else now
        if self.delay(now) > 0:
            return False
        self._stamps.append(now)
        return True

    def penalize(self, now: float | None = None) -> None:
        """Treat the window as full from now (after a rate-limit reply from the server)."""
        now = self.clock() if now is None else now
        self._stamps.clear()
        self._stamps.extend([now] * self.limit)

    async def acquire(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Wait until the window has room, then record the event."""
        while True:
            wait = self.delay()
            if wait <= 0 and self.try_acquire():
                return
            await sleep(max(wait, 0.001))
