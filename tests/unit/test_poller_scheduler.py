"""The poller asks its scheduler which security to poll and tells it about replies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streams.polling.adaptive import Adaptive
from tests.fakes import HK_OPEN, FakeClock, FakeOpenD, poller_on


class Scripted:
    """Answers from a script; records what the poller reports."""

    def __init__(self, picks: list[str | None]) -> None:
        self.picks = picks
        self.asked: list[tuple[list[str], float]] = []
        self.replies: list[tuple[str, float]] = []

    def next(self, due: Sequence[str], now: float) -> str | None:
        self.asked.append((list(due), now))
        return self.picks.pop(0)

    def polled(self, security: str, now: float) -> None:
        self.replies.append((security, now))

    def observe_flow(self, security: str, flow: Mapping[str, Any]) -> None:
        return None


async def test_poller_polls_what_the_scheduler_picks(clock: FakeClock) -> None:
    opend = FakeOpenD(clock, unknown={"HK.99999"})
    sched = Scripted(["HK.03690", "HK.03690", None, "HK.99999", "HK.00700"])
    poller, published = poller_on(clock, opend, ["HK.00700", "HK.99999", "HK.03690"])
    poller.scheduler = sched
    for _ in range(5):
        await poller.step()
    assert [k for k, _ in published] == ["HK.03690", "HK.03690", "HK.00700"]
    # Replies are reported (not the rejected request, not the skipped turn).
    assert [s for s, _ in sched.replies] == ["HK.03690", "HK.03690", "HK.00700"]
    assert all(t >= HK_OPEN for _, t in sched.replies)
    # The rejected security is no longer offered.
    assert sched.asked[-1][0] == ["HK.00700", "HK.03690"]
    assert len(opend.request_times) == 4  # the skipped turn spent nothing


async def test_poller_with_adaptive_scheduler_covers_the_watchlist(
    clock: FakeClock, opend: FakeOpenD
) -> None:
    watchlist = [f"HK.{i:05d}" for i in range(1, 11)]
    poller, published = poller_on(clock, opend, watchlist)
    poller.scheduler = Adaptive(60.0, interval=1.0)
    for _ in range(30):
        await poller.step()
    keys = [k for k, _ in published]
    assert sorted(keys[:10]) == watchlist  # never-polled ones first
    assert {k: keys.count(k) for k in watchlist} == dict.fromkeys(watchlist, 3)
