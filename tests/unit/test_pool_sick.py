"""A sick gateway in the pool, on the virtual clock: one that accepts connections but fails
its requests gives its securities to the healthy gateways, probes, and gets them back with
no backoff left over; one security's refusals never make a gateway sick."""

from __future__ import annotations

import asyncio
from itertools import pairwise
from typing import cast

from streams.domain.capital_flow import CapitalFlow
from streams.opend.errors import OpenDError
from streams.polling import spread
from streams.polling.pool import HEALTH_TICK_S, GatewayPool
from tests.fakes import HK_OPEN, DeadlineClock, FakeOpenD
from tests.unit.test_history_fetch import series
from tests.unit.test_pool import WATCHLIST, Board, run_until_done
from tests.unit.test_pool import make_pool as pool_of

SICK_AFTER = 30.0  # the pool's default, as --gateway-sick-after
PROBE_EVERY = 5.0  # the health policy's default
INTERNAL_ERROR = "内部错误 (internal error)"  # an error reply that names no security


class FlowGateway(FakeOpenD):
    """A fake OpenD with its capital-flow side (3211): every security's series, or while
    ``failing`` the error its quote requests get too."""

    def __init__(self, clock: DeadlineClock, *, label: str) -> None:
        super().__init__(clock, label=label)
        self.flow_asked: list[tuple[float, str]] = []  # every 3211 request

    async def get_capital_flow(self, security: str, timeout: float | None = None) -> CapitalFlow:
        self.flow_asked.append((self.clock.now, security))
        if self.failing is not None:
            raise OpenDError(-1, 0, self.failing, 3211)
        return series(security)


def make_pool(
    clock: DeadlineClock, labels: str = "a:1=a,b:2=b,c:3=c"
) -> tuple[GatewayPool, dict[str, FlowGateway], Board]:
    """Every gateway owned here, no handover grace, each with its capital-flow side."""
    owned = set(range(labels.count(",") + 1))
    pool, fakes, board = pool_of(
        clock, owned, grace=False, labels=labels, fake=FlowGateway, history=True
    )
    return pool, cast(dict[str, FlowGateway], fakes), board


def at(clock: DeadlineClock, t: float, then: object) -> asyncio.Task[None]:
    """Run ``then()`` when the virtual time reaches HK_OPEN + t."""

    async def wait() -> None:
        while clock.now < HK_OPEN + t:
            await asyncio.sleep(0)
        then()  # type: ignore[operator]

    return asyncio.create_task(wait())


def without_history_of_the_day(pool: GatewayPool) -> None:
    """Every security's flow lacks a baseline: each planner wants its series, again and
    again (a sick gateway's capital-flow loop would spend its whole budget on them)."""
    for security in WATCHLIST:
        pool.observe_flow(
            security, {"trading_day": "2026-11-24", "baseline": "none", "turnover": 1e8}
        )


async def test_a_sick_gateway_gives_its_securities_away_and_gets_them_back() -> None:
    clock = DeadlineClock(HK_OPEN, HK_OPEN + 240)
    pool, fakes, board = make_pool(clock)
    without_history_of_the_day(pool)
    b, fault_at, heal_at = fakes["b"], 20.0, 147.0
    b_share = set(spread.share(WATCHLIST, ["a", "b", "c"], "b"))

    def heal() -> None:
        b.failing = None

    events = [
        at(clock, fault_at, lambda: setattr(b, "failing", INTERNAL_ERROR)),
        at(clock, heal_at, heal),
    ]
    await run_until_done(pool, {0, 1, 2})
    for task in events:
        task.cancel()
    b_reports = [(t - HK_OPEN, state) for t, label, state in board.reports if label == "b"]
    sick_at = next(t for t, state in b_reports if state == "sick")
    back_at = next(t for t, state in b_reports if state == "up" and t > sick_at)
    assert [state for _, state in b_reports] == ["up", "sick", "up"]
    # Sick once its requests had failed for sick_after, judged on the health timer.
    first_failure = min(t for t, _ in b.requests if t >= HK_OPEN + fault_at) - HK_OPEN
    assert first_failure + SICK_AFTER <= sick_at <= first_failure + SICK_AFTER + HEALTH_TICK_S
    # Its securities went to a and c at once, within their bounded loads.
    others = sorted(fakes["a"].answered + fakes["c"].answered)
    for security in b_share:
        taken = min(t for t, s in others if s == security and t > HK_OPEN + sick_at) - HK_OPEN
        assert taken - sick_at <= len(WATCHLIST) / 2 + 1.0, security
    # While sick: one probe every PROBE_EVERY s, within its budget, and nothing else.
    probes = [t - HK_OPEN for t, _ in b.requests if sick_at < t - HK_OPEN < back_at]
    assert probes and all(s in b_share for t, s in b.requests if sick_at < t - HK_OPEN < back_at)
    assert all(later - earlier >= PROBE_EVERY for earlier, later in pairwise(probes))
    assert probes[0] - sick_at <= PROBE_EVERY + 1.0
    # The capital-flow loop stopped spending on securities it no longer had.
    assert not [t for t, _ in b.flow_asked if sick_at + 0.5 < t - HK_OPEN < back_at]
    # (It wanted them all along: before the fault and once back, it fetched their series.)
    assert {s for t, s in b.flow_asked if t - HK_OPEN < fault_at} == b_share
    assert {s for t, s in b.flow_asked if t - HK_OPEN > back_at} == b_share
    # Healed: the next probe brings it back, and it polls its whole share at once again
    # (no backoff that the fault set is left over).
    assert heal_at < back_at <= heal_at + PROBE_EVERY + 1.0
    assert pool.pollers[1].poller.rejections.entries() == []
    again = {s for t, s in b.answered if t - HK_OPEN > back_at}
    first_again = {s: min(t for t, x in b.answered if x == s and t > HK_OPEN + back_at)
                   for s in b_share}  # fmt: skip
    assert again == b_share
    assert max(first_again.values()) - HK_OPEN - back_at <= len(b_share) + 1.0
    assert not {s for t, s in others if t - HK_OPEN > back_at + 1.0} & b_share
    # Every security of b had a snapshot within sick_after + a few seconds of the fault.
    snapshots = sorted(fakes["a"].answered + fakes["b"].answered + fakes["c"].answered)
    for security in b_share:
        times = [t - HK_OPEN for t, s in snapshots if s == security]
        gaps = [later - earlier for earlier, later in pairwise(times)]
        assert max(gaps) <= SICK_AFTER + 15.0, (security, max(gaps))
    health = pool.pollers[1].health.describe()
    assert health["state"] == "up" and health["probes"]["ok"] == 1
    assert health["probes"]["sent"] == len(probes) + 1 and health["failures"]["error"] > 0


async def test_status_and_metrics_say_sick_and_why() -> None:
    from streams.observability.metrics import _gateway_families, _health_families

    clock = DeadlineClock(HK_OPEN, HK_OPEN + 60)
    pool, fakes, _board = make_pool(clock)
    fakes["b"].failing = INTERNAL_ERROR
    seen: list[dict[str, object]] = []
    at(clock, 55.0, lambda: seen.extend(pool.status()))
    await run_until_done(pool, {0, 1, 2})
    b = {g["gateway"]: g for g in seen}["b"]
    assert b["up"] is False and b["state"] == "sick" and b["securities"] == []
    assert "quote requests failing for 3" in str(b["state_reason"])
    assert "internal error" in str(b["state_reason"]) and "internal error" in str(b["last_error"])
    families = {f.name: f for f in [*_gateway_families(seen), *_health_families(seen)]}
    state = {tuple(s.labels.values()): s.value for s in families["capflow_gateway_state"].samples}
    assert state[("b", "sick")] == 1 and state[("b", "up")] == 0 and state[("a", "up")] == 1
    failures = {
        tuple(s.labels.values()): s.value
        for s in families["capflow_gateway_failures"].samples
        if s.name.endswith("_total")
    }
    assert failures[("b", "error")] > 0 and failures[("a", "error")] == 0
    failing = {
        s.labels["gateway"]: s.value for s in families["capflow_gateway_failing_seconds"].samples
    }
    assert failing["b"] >= SICK_AFTER and failing["a"] == 0


async def test_one_securitys_refusals_never_make_a_gateway_sick() -> None:
    clock = DeadlineClock(HK_OPEN, HK_OPEN + 200)
    pool, fakes, board = make_pool(clock)
    fakes["b"].no_right = set(WATCHLIST)  # no quote right for any of its securities
    await run_until_done(pool, {0, 1, 2})
    assert [state for _, label, state in board.reports if label == "b"] == ["up"]
    b = pool.pollers[1]
    assert b.health.failing_for() is None
    assert {e.kind for e in b.poller.rejections.entries()} == {"no_quote_right"}


async def test_the_last_gateway_standing_keeps_the_watchlist() -> None:
    clock = DeadlineClock(HK_OPEN, HK_OPEN + 120)
    pool, fakes, board = make_pool(clock, labels="a:1=a,b:2=b")
    for fake in fakes.values():
        fake.failing = INTERNAL_ERROR  # OpenD-wide trouble: moving securities helps nobody
    await run_until_done(pool, {0, 1})
    states = [(label, state) for _, label, state in board.reports]
    # One of the two may go sick first; the other then has nowhere to send its share.
    assert states.count(("a", "sick")) + states.count(("b", "sick")) <= 1
    assert board.up_labels()
