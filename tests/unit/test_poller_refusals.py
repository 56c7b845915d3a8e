"""The poller on a fake clock: refusals are backed off and retried, OpenD's market state rules.

Errors are built with ``classify`` from (retType, errCode, retMsg) as a real OpenD
would send them, so these tests cover the classification the poller relies on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from streams.opend.errors import OpenDError, classify
from streams.opend.snapshot import CapitalDistribution
from streams.polling.market_state import MarketState
from streams.polling.poller import Poller
from streams.polling.rejections import ERROR, NO_QUOTE_RIGHT, REJECTION_BACKOFF
from streams.timing.ratelimit import SlidingWindowLimiter

HK_OPEN = datetime(2026, 11, 24, 2, 0, tzinfo=UTC).timestamp()  # Tuesday 10:00 HKT
WEEKEND = datetime(2026, 11, 28, 2, 0, tzinfo=UTC).timestamp()  # Saturday


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedOpenD:
    """Answers each security from a script of errors (consumed in order), then data."""

    source = "opend://fake:1"

    def __init__(self, clock: Clock, script: Mapping[str, list[OpenDError]] | None = None) -> None:
        self.clock = clock
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.asked: list[tuple[float, str]] = []

    async def ensure_connected(self, max_attempts: int | None = None) -> None:
        return None

    async def get_capital_distribution(
        self, security: str, timeout: float | None = None
    ) -> CapitalDistribution:
        self.asked.append((self.clock.now, security))
        pending = self.script.get(security)
        if pending:
            raise pending.pop(0)
        market, code = security.split(".")
        return CapitalDistribution(
            security=security, market=market, qot_market=1, code=code,
            capital_in_super=1.0, capital_in_big=2.0, capital_in_mid=3.0, capital_in_small=4.0,
            capital_out_super=0.5, capital_out_big=1.5, capital_out_mid=2.5, capital_out_small=3.5,
            update_time="2026-11-24 10:00:00", update_timestamp=self.clock.now,
        )  # fmt: skip


def make(
    clock: Clock,
    opend: ScriptedOpenD,
    watchlist: list[str],
    market_state: MarketState | None = None,
) -> tuple[Poller, list[str]]:
    published: list[str] = []

    async def publish(key: str, value: bytes) -> None:
        published.append(key)

    limiter = SlidingWindowLimiter(30, 30.0, clock)
    poller = Poller(
        opend, publish, watchlist, limiter, wall_clock=clock, sleep=clock.sleep,
        market_state=market_state,
    )  # fmt: skip
    return poller, published


async def run_until(poller: Poller, clock: Clock, end: float) -> None:
    while clock.now < end:
        await poller.step()


async def test_no_quote_right_is_retried_after_a_backoff_not_dropped() -> None:
    clock = Clock(HK_OPEN)
    # errCode 1002 is what the simulator once used for "unknown": the text decides.
    refusal = classify(-1, 1002, "no quote right", 3212)
    opend = ScriptedOpenD(clock, {"HK.00005": [refusal]})
    poller, published = make(clock, opend, ["HK.00005", "HK.00700"])
    await run_until(poller, clock, HK_OPEN + 10)
    entry = poller.rejections.get("HK.00005")
    assert entry is not None and entry.kind == NO_QUOTE_RIGHT
    assert "HK.00005" not in poller.active()
    await run_until(poller, clock, HK_OPEN + REJECTION_BACKOFF[0] + 5)
    assert "HK.00005" in published  # asked again after the backoff, and it answered
    assert poller.rejections.get("HK.00005") is None
    status = poller.status()
    assert status["rejected"] == [] and "HK.00005" in status["active"]  # type: ignore[operator]


async def test_unrelated_failure_with_the_rate_limit_code_is_not_a_rate_limit() -> None:
    clock = Clock(HK_OPEN)
    opend = ScriptedOpenD(clock, {"HK.00700": [classify(-1, 1001, "some unrelated failure", 3212)]})
    poller, published = make(clock, opend, ["HK.00700"])
    await poller.step()
    await poller.step()
    assert poller.stats.rate_limited == 0 and poller.stats.errors == 1
    # No penalty window: the second request follows at the limiter's normal pace.
    assert opend.asked[1][0] - opend.asked[0][0] < 30.0
    assert published == ["HK.00700"]


async def test_repeated_unrecognised_error_is_backed_off_not_hammered() -> None:
    clock = Clock(HK_OPEN)
    failure = [classify(-1, 0, "内部错误 (internal error)", 3212) for _ in range(100)]
    opend = ScriptedOpenD(clock, {"HK.09988": failure})
    poller, _published = make(clock, opend, ["HK.09988", "HK.00700"])
    await run_until(poller, clock, HK_OPEN + 600)
    asks = [t for t, s in opend.asked if s == "HK.09988"]
    others = [t for t, s in opend.asked if s == "HK.00700"]
    entry = poller.rejections.get("HK.09988")
    assert entry is not None and entry.kind == ERROR
    # Backed off: in 10 minutes at 1 request/s it gets a handful, the other security the rest.
    assert len(asks) <= 8 and len(others) > 500


async def test_opend_says_closed_on_a_table_trading_day_spends_nothing() -> None:
    clock = Clock(HK_OPEN)

    async def holiday() -> dict[str, int]:
        return {"HK": 6, "US": 6, "SH": 6, "SZ": 6}

    opend = ScriptedOpenD(clock)
    poller, published = make(clock, opend, ["HK.00700"], MarketState(holiday))
    await run_until(poller, clock, HK_OPEN + 1800)
    assert opend.asked == [] and published == []


async def test_opend_says_open_when_the_table_says_closed() -> None:
    clock = Clock(WEEKEND)

    async def trading() -> dict[str, int]:
        return {"HK": 3}

    opend = ScriptedOpenD(clock)
    poller, published = make(clock, opend, ["HK.00700"], MarketState(trading))
    for _ in range(5):
        await poller.step()
    assert published == ["HK.00700"] * 5


async def test_unexplained_errors_across_securities_pause_a_full_window() -> None:
    clock = Clock(HK_OPEN)
    watchlist = [f"HK.0{n:04d}" for n in range(1, 11)]
    # OpenD fails every request in words we do not know (a rate limit, maybe).
    failing = {s: [classify(-1, 0, "系统繁忙 (system busy)", 3212)] * 1000 for s in watchlist}
    opend = ScriptedOpenD(clock, failing)
    poller, published = make(clock, opend, watchlist)
    await run_until(poller, clock, HK_OPEN + 300)
    assert published == []
    # The budget allows 300 requests in 300 s. Per-security backoff alone still sends
    # 60 here; pausing a full window after every 3 failures in a row about halves it.
    assert len(opend.asked) <= 35, len(opend.asked)
