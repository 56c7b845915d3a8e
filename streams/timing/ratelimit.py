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
from typing import Any

Clock = Callable[[], float]
_MIN_WAIT = 1e-6  # a positive wait even when the float difference rounds to zero
MARGIN_FRACTION = 1 / 60  # 0.5 s on OpenD's 30 s window


def limit_margin(window: float) -> float:
    """Safety margin a client adds to the server's window: a fixed share of it.

    It absorbs jitter between when we count a request (departure) and when the server
    does (arrival). A share of the window rather than fixed seconds keeps a speeded-up
    simulation (window 30 s / speed) spending the same share of its budget as real
    time: a fixed 0.5 s on a 1.5 s window would leave a quarter of it unused.
    """
    if not window > 0:
        raise ValueError(f"window must be > 0, got {window}")
    return window * MARGIN_FRACTION


class SlidingWindowLimiter:
    """Admits an event at time t only if fewer than ``limit`` events lie in (t - window, t]."""

    def __init__(
        self, limit: int, window: float, clock: Clock = time.monotonic, spacing: float = 0.0
    ) -> None:
        """``spacing`` > 0 also keeps events that far apart, spreading the budget evenly
        instead of spending it in one burst at the start of each window."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if window <= 0:
            raise ValueError(f"window must be > 0, got {window}")
        self.limit = limit
        self.window = window
        self.clock = clock
        self.spacing = spacing
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
        # Compare the way _expire does (now - stamp < span), so rounding in
        # "stamp + span - now" can never admit an event the window still holds.
        wait = 0.0
        if self._stamps and self.spacing and now - self._stamps[-1] < self.spacing:
            wait = max(self._stamps[-1] + self.spacing - now, _MIN_WAIT)
        if len(self._stamps) >= self.limit:
            wait = max(wait, self._stamps[0] + self.window - now, _MIN_WAIT)
        return wait

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

    def view(self, owned: bool = True) -> dict[str, Any]:
        """In use, limit and window for ``/status/`` (in use only where this process sends)."""
        return {"used": self.used() if owned else 0, "limit": self.limit, "window_s": self.window}

    async def acquire(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Wait until the window has room, then record the event."""
        while True:
            wait = self.delay()
            if wait <= 0 and self.try_acquire():
                return
            await sleep(max(wait, 0.001))
