"""Which security the next OpenD request is spent on.

The poller asks its scheduler once per request, among the securities that are due
(active, market open, owned by this gateway). A scheduler is pure logic on an
injected clock value: it never sleeps, never does I/O, so it is unit-tested with a
fake clock. Two policies:

- :class:`RoundRobin`: the baseline, every due security in turn.
- adaptive (``streams.polling.adaptive``): spends requests where a poll most
  advances an alert, reading the flow state back from ``capflow.flow.v1`` and the
  minute levels of the capital-flow series its gateway fetches, with a
  ``max_staleness`` floor for every security.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class Scheduler(Protocol):
    """The poller's policy: pick the next security, learn from replies and flows."""

    def next(self, due: Sequence[str], now: float) -> str | None:
        """The security to poll now among ``due`` (non-empty, watchlist order); None to skip."""
        ...

    def polled(self, security: str, now: float) -> None:
        """A reply (a snapshot) for ``security`` arrived at ``now``."""
        ...

    def observe_flow(self, security: str, flow: Mapping[str, Any]) -> None:
        """A ``capflow.flow.v1`` record of ``security`` was read back from Kafka."""
        ...

    def observe_minutes(
        self, security: str, trading_day: str, levels: Sequence[tuple[float, float]]
    ) -> None:
        """A capital-flow series of ``security`` was fetched on this gateway: (event time,
        L) of its minutes, the minute in progress last (the flow processor folds the same
        rows in before the next snapshot)."""
        ...

    def forget(self, security: str) -> None:
        """``security`` left the watchlist: drop what is known of it."""
        ...


class RoundRobin:
    """Every due security in turn; the order of ``due`` is kept across calls."""

    def __init__(self) -> None:
        self._last: str | None = None

    def next(self, due: Sequence[str], now: float) -> str | None:
        if not due:
            return None
        if self._last is None or self._last not in due:
            # The last one is no longer due (market closed, moved to another gateway):
            # start again at the front.
            choice = due[0]
        else:
            choice = due[(due.index(self._last) + 1) % len(due)]
        self._last = choice
        return choice

    def polled(self, security: str, now: float) -> None:
        return None

    def observe_flow(self, security: str, flow: Mapping[str, Any]) -> None:
        return None

    def observe_minutes(
        self, security: str, trading_day: str, levels: Sequence[tuple[float, float]]
    ) -> None:
        return None

    def forget(self, security: str) -> None:
        return None  # a security no longer due is skipped by next() already


SCHEDULES: tuple[str, ...] = ("round-robin", "adaptive")
DEFAULT_MAX_STALENESS = 600.0


def make_scheduler(
    name: str,
    *,
    max_staleness: float = DEFAULT_MAX_STALENESS,
    interval: float | None = None,
    confirm: int = 2,
    cooldown: float = 600.0,
) -> Scheduler:
    """The scheduler ``--schedule`` names; ``interval`` is the planned seconds per request.

    ``max_staleness`` and ``interval`` are in the poller's clock; ``confirm`` and
    ``cooldown`` mirror the detector so the adaptive policy knows when a flip alerts.
    """
    if name == "round-robin":
        return RoundRobin()
    if name == "adaptive":
        from streams.polling.adaptive import Adaptive

        return Adaptive(max_staleness, interval=interval, confirm=confirm, cooldown=cooldown)
    raise ValueError(f"unknown schedule {name!r}: expected one of {', '.join(SCHEDULES)}")
