"""The poller on a fake clock: refusals are backed off and retried, OpenD's market state rules.

Errors are built with ``classify`` from (retType, errCode, retMsg) as a real OpenD
would send them, so these tests cover the classification the poller relies on.
"""

from __future__ import annotations

from streams.opend.errors import classify
from streams.polling.market_state import MarketState
from streams.polling.poller import Poller
from streams.polling.rejections import ERROR, NO_QUOTE_RIGHT, REJECTION_BACKOFF
from tests.fakes import HK_OPEN, WEEKEND, FakeClock, FakeOpenD, poller_on


def keys(published: list[tuple[str, bytes]]) -> list[str]:
    return [key for key, _ in published]


async def run_until(poller: Poller, clock: FakeClock, end: float) -> None:
    while clock.now < end:
        await poller.step()


async def test_no_quote_right_is_retried_after_a_backoff_not_dropped(clock: FakeClock) -> None:
    # errCode 1002 is what the simulator once used for "unknown": the text decides.
    refusal = classify(-1, 1002, "no quote right", 3212)
    opend = FakeOpenD(clock, script={"HK.00005": [refusal]})
    poller, published = poller_on(clock, opend, ["HK.00005", "HK.00700"])
    await run_until(poller, clock, HK_OPEN + 10)
    entry = poller.rejections.get("HK.00005")
    assert entry is not None and entry.kind == NO_QUOTE_RIGHT
    assert "HK.00005" not in poller.active()
    await run_until(poller, clock, HK_OPEN + REJECTION_BACKOFF[0] + 5)
    assert "HK.00005" in keys(published)  # asked again after the backoff, and it answered
    assert poller.rejections.get("HK.00005") is None
    status = poller.status()
    assert status["rejected"] == [] and "HK.00005" in status["active"]  # type: ignore[operator]


async def test_unrelated_failure_with_the_rate_limit_code_is_not_a_rate_limit(
    clock: FakeClock,
) -> None:
    opend = FakeOpenD(
        clock, script={"HK.00700": [classify(-1, 1001, "some unrelated failure", 3212)]}
    )
    poller, published = poller_on(clock, opend, ["HK.00700"])
    await poller.step()
    await poller.step()
    assert poller.stats.rate_limited == 0 and poller.stats.errors == 1
    # No penalty window: the second request follows at the limiter's normal pace.
    assert opend.requests[1][0] - opend.requests[0][0] < 30.0
    assert keys(published) == ["HK.00700"]


async def test_repeated_unrecognised_error_is_backed_off_not_hammered(clock: FakeClock) -> None:
    failure = [classify(-1, 0, "内部错误 (internal error)", 3212) for _ in range(100)]
    opend = FakeOpenD(clock, script={"HK.09988": failure})
    poller, _published = poller_on(clock, opend, ["HK.09988", "HK.00700"])
    await run_until(poller, clock, HK_OPEN + 600)
    asks = [t for t, s in opend.requests if s == "HK.09988"]
    others = [t for t, s in opend.requests if s == "HK.00700"]
    entry = poller.rejections.get("HK.09988")
    assert entry is not None and entry.kind == ERROR
    # Backed off: in 10 minutes at 1 request/s it gets a handful, the other security the rest.
    assert len(asks) <= 8 and len(others) > 500


async def test_opend_says_closed_on_a_table_trading_day_spends_nothing(
    clock: FakeClock, opend: FakeOpenD
) -> None:
    async def holiday() -> dict[str, int]:
        return {"HK": 6, "US": 6, "SH": 6, "SZ": 6}

    poller, published = poller_on(clock, opend, ["HK.00700"], market_state=MarketState(holiday))
    await run_until(poller, clock, HK_OPEN + 1800)
    assert opend.requests == [] and published == []


async def test_opend_says_open_when_the_table_says_closed() -> None:
    clock = FakeClock(WEEKEND)

    async def trading() -> dict[str, int]:
        return {"HK": 3}

    opend = FakeOpenD(clock)
    poller, published = poller_on(clock, opend, ["HK.00700"], market_state=MarketState(trading))
    for _ in range(5):
        await poller.step()
    assert keys(published) == ["HK.00700"] * 5


async def test_unexplained_errors_across_securities_pause_a_full_window(clock: FakeClock) -> None:
    watchlist = [f"HK.0{n:04d}" for n in range(1, 11)]
    # OpenD fails every request in words we do not know (a rate limit, maybe).
    failing = {s: [classify(-1, 0, "系统繁忙 (system busy)", 3212)] * 1000 for s in watchlist}
    opend = FakeOpenD(clock, script=failing)
    poller, published = poller_on(clock, opend, watchlist)
    await run_until(poller, clock, HK_OPEN + 300)
    assert published == []
    # The budget allows 300 requests in 300 s. Per-security backoff alone still sends
    # 60 here; pausing a full window after every 3 failures in a row about halves it.
    assert len(opend.requests) <= 35, len(opend.requests)
