"""The gateway pool on a fake clock with fake gateways: handover grace, revocation while
waiting for budget, a refused gateway's securities moving to the others and back."""

from __future__ import annotations

import asyncio

import pytest

from streams.polling import spread
from streams.polling.gateways import Gateway, parse_gateways
from streams.polling.pool import HEALTH_TICK_S, GatewayPool
from streams.polling.scheduler import RoundRobin
from streams.timing.ratelimit import SlidingWindowLimiter
from tests.fakes import HK_OPEN, DeadlineClock, Done, FakeClock, FakeOpenD

WATCHLIST = [f"HK.{i:05d}" for i in range(1, 13)]


class Board:
    """The status board's contract, kept in memory (one worker)."""

    def __init__(self, gateways: list[Gateway]) -> None:
        self.states = {gw.label: ("up", "") for gw in gateways}
        self.reports: list[tuple[float, str, str]] = []  # (time, label, state)
        self.clock: FakeClock | None = None

    def up_labels(self) -> list[str]:
        return [label for label in self.states if self.is_up(label)]

    def is_up(self, label: str) -> bool:
        return self.state_of(label) == "up"

    def state_of(self, label: str) -> str:
        return self.states[label][0]

    def reason_of(self, label: str) -> str:
        return self.states[label][1]

    def report(self, gw: Gateway, state: str, reason: str = "") -> None:
        self.states[gw.label] = (state, reason)
        self.reports.append((self.clock.now if self.clock else 0.0, gw.label, state))


def make_pool(
    clock: DeadlineClock,
    owned: set[int],
    *,
    grace: bool = True,
    labels: str = "a:1=a,b:2=b",
    fake: type[FakeOpenD] = FakeOpenD,
    history: bool = False,
) -> tuple[GatewayPool, dict[str, FakeOpenD], Board]:
    """A pool of fake gateways (``history``: with a capital-flow side each)."""
    gateways = parse_gateways(labels)
    fakes = {gw.label: fake(clock, label=gw.label) for gw in gateways}
    board = Board(gateways)
    board.clock = clock

    async def publish(key: str, value: bytes) -> None:
        return None

    def limiter() -> SlidingWindowLimiter:
        return SlidingWindowLimiter(30, 30.0, clock, spacing=1.0)

    pool = GatewayPool(
        gateways, WATCHLIST, publish, board,
        make_client=lambda gw: fakes[gw.label],
        make_limiter=limiter, make_flow_limiter=limiter if history else None,
        publish_series=publish if history else None,
        make_scheduler=RoundRobin, is_owner=lambda k: k in owned,
        handover_grace=grace, down_after=10.0, wall_clock=clock, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    return pool, fakes, board


async def run_until_done(pool: GatewayPool, owned: set[int]) -> None:
    await pool.acquire(owned)
    tasks = [task for gp in pool.pollers.values() for task in gp.tasks]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, Done):
            raise r


async def test_new_owner_waits_a_window_then_polls_only_its_share_within_budget() -> None:
    clock = DeadlineClock(HK_OPEN, HK_OPEN + 120)
    owned = {0, 1}
    pool, fakes, _ = make_pool(clock, owned)
    await run_until_done(pool, owned)
    for label, fake in fakes.items():
        times = [t for t, _ in fake.requests]
        assert times and times[0] >= HK_OPEN + 30.0  # the previous owner's window
        assert all(b - a >= 30.0 for a, b in zip(times, times[30:], strict=False))
        assert {s for _, s in fake.requests} == set(spread.share(WATCHLIST, ["a", "b"], label))
    # Each security on exactly one gateway.
    assert not {s for _, s in fakes["a"].requests} & {s for _, s in fakes["b"].requests}


async def test_a_revoked_owner_sends_nothing_after_its_budget_wait() -> None:
    clock = DeadlineClock(HK_OPEN, HK_OPEN + 200)
    owned = {0}
    pool, fakes, _ = make_pool(clock, owned, labels="a:1=a")
    await pool.acquire(owned)
    owned.clear()  # revoked while the new owner waits out the grace window
    task = pool.pollers[0].task
    assert task is not None
    await asyncio.gather(task, return_exceptions=True)
    assert fakes["a"].requests == []


async def test_a_refused_gateway_goes_down_its_securities_move_and_come_back() -> None:
    clock = DeadlineClock(HK_OPEN, HK_OPEN + 400)
    owned = {0, 1}
    pool, fakes, board = make_pool(clock, owned, grace=False)
    fakes["b"].refusing = True
    await pool.acquire(owned)

    async def heal() -> None:
        while clock.now < HK_OPEN + 200:
            await asyncio.sleep(0)
        fakes["b"].refusing = False

    healer = asyncio.create_task(heal())
    await run_until_done(pool, set())
    healer.cancel()
    assert [(label, state) for _, label, state in board.reports] == [
        ("a", "up"),
        ("b", "down"),
        ("b", "up"),
    ]
    down_at = next(t for t, label, state in board.reports if label == "b" and state == "down")
    back_at = next(t for t, label, state in board.reports if label == "b" and state == "up")
    # down_after on the health timer, not at the first refusal nor at a reconnect attempt
    assert HK_OPEN + 10 <= down_at <= HK_OPEN + 10 + HEALTH_TICK_S
    assert back_at >= HK_OPEN + 200
    polled_by_a = [(t, s) for t, s in fakes["a"].requests]
    b_share = set(spread.share(WATCHLIST, ["a", "b"], "b"))
    # While b was down, a polled b's securities too; the whole watchlist stayed covered.
    while_down = {s for t, s in polled_by_a if down_at + 5 < t < back_at}
    assert while_down == set(WATCHLIST)
    # Back up: b polls its share again and a no longer does.
    after = {s for t, s in polled_by_a if t > back_at + 5}
    assert after and not after & b_share
    assert {s for t, s in fakes["b"].requests if t > back_at} == b_share


async def test_stop_polling_is_immediate_and_final() -> None:
    clock = DeadlineClock(HK_OPEN, HK_OPEN + 100)
    owned = {0, 1}
    pool, fakes, _ = make_pool(clock, owned, grace=False)
    await pool.acquire(owned)
    for _ in range(50):
        await asyncio.sleep(0)
    pool.stop_polling()
    sent = {label: len(f.requests) for label, f in fakes.items()}
    await pool.close()
    await pool.acquire(owned)  # a late assignment after the stop starts nothing
    for _ in range(50):
        await asyncio.sleep(0)
    assert {label: len(f.requests) for label, f in fakes.items()} == sent
    assert all(not gp.polling for gp in pool.pollers.values())


def test_each_gateway_gets_its_own_scheduler_of_the_schedule() -> None:
    from streams.polling.adaptive import Adaptive
    from streams.polling.service import scheduler_for
    from streams.settings import FlowSettings, PollerSettings

    poller = PollerSettings(
        schedule="adaptive", max_staleness=120.0, rate_limit_window=30.0, rate_limit_requests=30
    )
    flow = FlowSettings(confirm=2, cooldown=600.0)
    first, second = scheduler_for(poller, flow), scheduler_for(poller, flow)
    assert isinstance(first, Adaptive) and isinstance(second, Adaptive)
    assert first is not second
    assert first.interval == pytest.approx(30.5 / 30)  # the limiter's window / requests
    round_robin = PollerSettings(schedule="round-robin")
    assert isinstance(scheduler_for(round_robin, flow), RoundRobin)


async def test_ownership_is_a_lease_that_lapses_before_the_group_can_reassign() -> None:
    from streams.polling.ownership import GatewayOwnership

    now = {"t": 1000.0}
    events: list[tuple[str, set[int]]] = []

    async def assigned(ks: set[int], continuing: set[int]) -> None:
        events.append(("assigned", ks))

    async def revoked(ks: set[int]) -> None:
        events.append(("revoked", ks))

    own = GatewayOwnership(
        "ctl", "grp", {"bootstrap_servers": "127.0.0.1:9"}, session_timeout=10.0,
        on_assigned=assigned, on_revoked=revoked, clock=lambda: now["t"],
    )  # fmt: skip
    await own._assigned({0, 2})
    assert own.owns(0) and own.owns(2) and not own.owns(1)
    now["t"] += 4.9  # no renewal (broker unreachable): still inside session_timeout / 2
    assert own.owns(0)
    now["t"] += 0.2  # past it: polling stops well before the group's session timeout
    assert not own.owns(0) and not own.owns(2)
    await own._revoked({0, 1})  # a rebalance: only what was owned is reported revoked
    assert events == [("assigned", {0, 2}), ("revoked", {0})]
    assert own.owned == {2}


async def test_a_lapsed_lease_pauses_polling_and_a_renewed_one_resumes_it() -> None:
    clock = DeadlineClock(HK_OPEN, HK_OPEN + 90)
    confirmed = {"now": True}
    pool, fakes, _ = make_pool(clock, {0}, grace=False, labels="a:1=a")
    pool.is_owner = lambda k: confirmed["now"]  # assigned all along, lease comes and goes
    pool.is_assigned = lambda k: True

    async def outage() -> None:
        while clock.now < HK_OPEN + 20:
            await asyncio.sleep(0)
        confirmed["now"] = False
        while clock.now < HK_OPEN + 50:
            await asyncio.sleep(0)
        confirmed["now"] = True

    flapper = asyncio.create_task(outage())
    await run_until_done(pool, {0})
    flapper.cancel()
    times = [t for t, _ in fakes["a"].requests]
    assert any(t < HK_OPEN + 20 for t in times)
    assert not [t for t in times if HK_OPEN + 21 < t < HK_OPEN + 50]  # nothing while lapsed
    assert any(t > HK_OPEN + 50 for t in times)  # polling came back by itself


async def test_a_gateway_given_straight_back_keeps_polling_without_grace() -> None:
    from types import SimpleNamespace

    from streams.polling.ownership import GatewayOwnership

    calls: list[tuple[set[int], set[int]]] = []

    async def assigned(ks: set[int], continuing: set[int]) -> None:
        calls.append((ks, continuing))

    async def revoked(ks: set[int]) -> None:
        return None

    own = GatewayOwnership(
        "ctl", "grp", {"bootstrap_servers": "127.0.0.1:9"}, session_timeout=10.0,
        on_assigned=assigned, on_revoked=revoked,
    )  # fmt: skip
    coordinator = SimpleNamespace(generation=1)
    own._consumer = SimpleNamespace(_coordinator=coordinator)  # type: ignore[assignment]
    await own._assigned({0, 1})
    await own._revoked({0, 1})  # a worker joins: generation 1 -> 2
    coordinator.generation = 2
    await own._assigned({0})
    await own._revoked({0})
    coordinator.generation = -1  # this member was dropped and joins anew:
    await own._revoked(set())
    coordinator.generation = 5  # generations 3 and 4 went on without it
    await own._assigned({0})
    assert calls == [({0, 1}, set()), ({0}, {0}), ({0}, set())]

    # In the pool, a continuing gateway polls at once; a new one waits out the window.
    clock = DeadlineClock(HK_OPEN, HK_OPEN + 40)
    pool, fakes, _ = make_pool(clock, {0, 1})
    await pool.acquire({0, 1}, continuing={0})
    results = await asyncio.gather(
        *(task for gp in pool.pollers.values() for task in gp.tasks), return_exceptions=True
    )
    assert all(isinstance(r, Done) for r in results)
    assert fakes["a"].requests[0][0] < HK_OPEN + 1.0
    assert fakes["b"].requests[0][0] >= HK_OPEN + 30.0
