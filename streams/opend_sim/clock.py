"""Simulated clock: a start time plus wall time elapsed times a speed factor.

``speed=60`` turns one wall second into a simulated minute (demos); ``speed=0``
freezes time, which makes exact comparisons between clients easy in tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SimClock:
    """now() = start + (wall() - wall_at_start) * speed, in epoch seconds."""

    def __init__(
        self,
        start: float | None = None,
        speed: float = 1.0,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        self._wall = wall
        self._start = time.time() if start is None else float(start)
        self._wall0 = wall()
        self.speed = float(speed)

    def now(self) -> float:
        return self._start + (self._wall() - self._wall0) * self.speed

    def set(self, t: float, speed: float | None = None) -> None:
        """Jump to simulated time t (and optionally change speed) from this wall instant."""
        self._start = float(t)
        self._wall0 = self._wall()
        if speed is not None:
            if speed < 0:
                raise ValueError(f"speed must be >= 0, got {speed}")
            self.speed = float(speed)

    def advance(self, seconds: float) -> None:
        """Move simulated time forward (for tests with a frozen clock)."""
        self.set(self.now() + seconds)
