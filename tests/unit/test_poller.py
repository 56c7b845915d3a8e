"""Poller on a fake clock with a fake OpenD: budget, closed markets, rejections, rate limits."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.polling.scheduler import RoundRobin
from tests.fakes import HK_OPEN, WEEKEND, FakeClock, FakeOpenD, poller_on


async def test_uses_the_full_budget_and_never_more(clock: FakeClock, opend: FakeOpenD) -> None:
    poller, published = poller_on(clock, opend, ["HK.00700", "HK.09988", "HK.03690"])
    while clock.now < HK_OPEN + 300:
        await poller.step()
    times = opend.request_times
    # 300 s at 30 per 30 s: exactly 300 requests inside [0, 300).
    assert sum(t < HK_OPEN + 300 for t in times) == 300
    for i in range(len(times) - 30):
        assert times[i + 30] - times[i] >= 30.0
    keys = [k for k, _ in published]
    assert keys[:6] == ["HK.00700", "HK.09988", "HK.03690"] * 2
    record = DistributionSnapshot.FromString(published[0][1])
    assert record.security == "HK.00700" and record.capital_in_big == 2.0
    assert record.source == "opend://fake:1" and record.trading_day == "2026-11-24"


async def test_closed_markets_spend_nothing() -> None:
    clock = FakeClock(WEEKEND)
    opend = FakeOpenD(clock)
    poller, published = poller_on(clock, opend, ["HK.00700", "US.AAPL"])
    for _ in range(20):
        await poller.step()
    assert opend.request_times == [] and published == []
    assert clock.now > WEEKEND + 600  # it slept instead


async def test_only_open_market_is_polled(clock: FakeClock, opend: FakeOpenD) -> None:
    poller, published = poller_on(clock, opend, ["US.AAPL", "HK.00700"])
    for _ in range(5):
        await poller.step()
    assert {k for k, _ in published} == {"HK.00700"}


async def test_unknown_security_is_skipped_and_reported(clock: FakeClock) -> None:
    opend = FakeOpenD(clock, unknown={"HK.99999"})
    poller, published = poller_on(clock, opend, ["HK.99999", "HK.00700"])
    for _ in range(6):
        await poller.step()
    entry = poller.rejections.get("HK.99999")
    assert entry is not None and "unknown" in entry.reason
    assert opend.request_times and len(published) == 5
    assert {k for k, _ in published} == {"HK.00700"}


async def test_rate_limit_reply_backs_off_a_full_window(clock: FakeClock) -> None:
    opend = FakeOpenD(clock, limited=1)
    poller, published = poller_on(clock, opend, ["HK.00700"])
    await poller.step()
    assert poller.stats.rate_limited == 1 and published == []
    await poller.step()
    assert opend.request_times[1] - opend.request_times[0] == pytest.approx(30.0)
    assert len(published) == 1


async def test_empty_watchlist_is_a_clear_error(clock: FakeClock, opend: FakeOpenD) -> None:
    with pytest.raises(ValueError, match="watchlist is empty"):
        poller_on(clock, opend, [])


async def test_leadership_lost_while_waiting_for_budget_sends_nothing(
    clock: FakeClock, opend: FakeOpenD
) -> None:
    poller, published = poller_on(clock, opend, ["HK.00700"])
    poller.limiter.penalize()  # the next request has to wait a full window
    assert await poller.step(still_leader=lambda: False) is None
    assert opend.request_times == [] and published == []
    assert clock.now == HK_OPEN + 30.0


class Reverse(RoundRobin):
    """A scheduler that is not round-robin: always the last due security."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[str] = []

    def next(self, due: Sequence[str], now: float) -> str | None:
        return due[-1]

    def polled(self, security: str, now: float) -> None:
        self.replies.append(security)


async def test_the_scheduler_picks_and_learns_of_each_reply(
    clock: FakeClock, opend: FakeOpenD
) -> None:
    scheduler = Reverse()
    poller, published = poller_on(clock, opend, ["HK.00700", "HK.09988"], scheduler=scheduler)
    for _ in range(3):
        await poller.step()
    assert [k for k, _ in published] == ["HK.09988"] * 3
    assert scheduler.replies == ["HK.09988"] * 3


async def test_share_limits_polling_to_the_gateways_securities(
    clock: FakeClock, opend: FakeOpenD
) -> None:
    mine = {"HK.09988"}
    poller, published = poller_on(clock, opend, ["HK.00700", "HK.09988"], share=lambda: mine)
    for _ in range(4):
        await poller.step()
    assert {k for k, _ in published} == {"HK.09988"}
    mine = set()  # the spread moved everything away: the poller idles, sends nothing
    before = len(opend.request_times)
    assert await poller.step() is None
    assert len(opend.request_times) == before
