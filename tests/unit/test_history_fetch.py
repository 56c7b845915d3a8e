"""The capital-flow budget per gateway: which security it goes to, the fetch, the refs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.domain.capital_flow import CapitalFlow, FlowRow
from streams.opend.errors import RateLimitError, UnknownSecurityError
from streams.pb.capflow.v1.capital_flow_pb2 import CapitalFlowSeries
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.polling.history import HistoryFetcher, HistoryPlanner
from streams.polling.poller import Poller
from streams.timing.ratelimit import SlidingWindowLimiter
from tests.fakes import FakeClock

DAY = "2024-06-03"
OPEN = 1_717_378_200.0  # 09:30 HKT
ELEVEN = OPEN + 5400  # 11:00 HKT, where the tests' fake clock starts


def flow(security: str, t: float, baseline: str = "snapshot", **over: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "security": security,
        "trading_day": DAY,
        "event_ts": t,
        "window_s": 300.0,
        "turnover": 1e8,
        "regime": "INFLOW",
        "change": {"large": 5e6},
        "baseline": baseline,
        "baseline_ts": None if baseline in ("none", "origin") else t - 310.0,
    }
    record.update(over)
    return record


# -- the planner ----------------------------------------------------------------------------


def test_unseen_first_then_without_baseline_hottest_first_then_nothing() -> None:
    clock = FakeClock(ELEVEN)
    plan = HistoryPlanner(clock=clock)
    due = ["HK.00001", "HK.00002", "HK.00003", "HK.00004"]
    plan.observe_flow("HK.00001", flow("HK.00001", clock.now))
    plan.observe_flow("HK.00002", flow("HK.00002", clock.now, "none", turnover=1e7))
    plan.observe_flow("HK.00003", flow("HK.00003", clock.now, "none", turnover=9e8))
    plan.polled("HK.00004", clock.now)  # polled, its flow not read yet
    plan.polled("HK.00005", clock.now)
    due.append("HK.00005")
    assert plan.next(due, clock.now) == "HK.00005"  # never seen: warm start, from the end
    plan.fetched("HK.00005", clock.now)
    assert plan.next(due, clock.now) == "HK.00004"
    assert plan.waiting() == ["HK.00002", "HK.00003"]
    plan.fetched("HK.00004", clock.now)
    assert plan.next(due, clock.now) == "HK.00003"  # then without a baseline, hottest first
    plan.fetched("HK.00003", clock.now)
    assert plan.next(due, clock.now) == "HK.00002"
    plan.fetched("HK.00002", clock.now)
    assert plan.next(due, clock.now) is None  # the budget is not spent for nothing
    # Still no baseline a minute later: the series did not help, ask again.
    clock.now += 60
    assert plan.next(due, clock.now) == "HK.00003"
    # A baseline at last: no longer waiting.
    plan.observe_flow("HK.00003", flow("HK.00003", clock.now, "minute"))
    plan.observe_flow("HK.00002", flow("HK.00002", clock.now, "minute"))
    assert plan.waiting() == [] and plan.next(due, clock.now) is None


def test_before_a_poll_a_series_only_where_it_sharpens_r_w() -> None:
    clock = FakeClock(ELEVEN)
    plan = HistoryPlanner(clock=clock, sharpen_gap=60.0)
    fresh, far, turning = "HK.00001", "HK.00002", "HK.00003"
    plan.observe_flow(fresh, flow(fresh, clock.now, baseline_ts=clock.now - 310.0))
    plan.observe_flow(far, flow(far, clock.now, baseline_ts=clock.now - 600.0))
    plan.observe_flow(turning, flow(turning, clock.now, change={"large": -1e6}))
    for s in (fresh, far, turning):
        plan.polled(s, clock.now)
    assert not plan.wants_before_poll(fresh, clock.now)
    assert plan.wants_before_poll(far, clock.now)  # its R_W reached 300 s before t - W
    assert plan.wants_before_poll(turning, clock.now)  # INFLOW, but large orders now sell
    plan.fetched(far, clock.now + 1)
    assert not plan.wants_before_poll(far, clock.now + 2)  # one series per poll is enough
    plan.polled(far, clock.now + 30)
    assert plan.wants_before_poll(far, clock.now + 60)
    assert plan.wants_before_poll("HK.09999", clock.now)  # never seen: its warm start


def test_a_late_record_of_an_earlier_day_changes_nothing() -> None:
    plan = HistoryPlanner(clock=FakeClock(ELEVEN))
    plan.observe_flow("HK.00001", flow("HK.00001", OPEN, "minute"))
    plan.observe_flow(
        "HK.00001", {**flow("HK.00001", OPEN - 86400, "none"), "trading_day": "2024-05-31"}
    )
    assert plan.waiting() == []


def test_watching_securities_on_a_side_longest_unseen_first() -> None:
    clock = FakeClock(ELEVEN)
    plan = HistoryPlanner(clock=clock, watch_gap=30.0)
    due = ["HK.00001", "HK.00002", "HK.00003", "HK.00004"]
    plan.observe_flow("HK.00001", flow("HK.00001", clock.now))  # INFLOW
    plan.observe_flow("HK.00002", flow("HK.00002", clock.now, regime="OUTFLOW"))
    plan.observe_flow("HK.00003", flow("HK.00003", clock.now, regime="NEUTRAL"))
    plan.observe_flow("HK.00004", flow("HK.00004", clock.now, "none"))
    for s, ago in zip(due, (10, 5, 60, 60), strict=True):
        plan.polled(s, clock.now - ago)
    # Without a baseline first (rule 1), then nothing: every look is under 30 s old.
    assert plan.next(due, clock.now) == "HK.00004"
    plan.fetched("HK.00004", clock.now)
    assert plan.next(due, clock.now + 19) is None
    # 30 s on: the one on a side looked at longest ago; a neutral one is never watched,
    # nor one that waits for its baseline (it is asked again after refetch_after).
    assert plan.next(due, clock.now + 20) == "HK.00001"
    plan.polled("HK.00001", clock.now + 20)
    assert plan.next(due, clock.now + 25) == "HK.00002"
    plan.fetched("HK.00002", clock.now + 25)  # a fetch is a look too
    assert plan.next(due, clock.now + 25) is None
    # Not watching: the default.
    idle = HistoryPlanner(clock=clock)
    idle.observe_flow("HK.00001", flow("HK.00001", clock.now))
    idle.polled("HK.00001", clock.now - 600)
    assert idle.next(["HK.00001"], clock.now) is None


# -- the fetch ------------------------------------------------------------------------------


def series(security: str = "HK.00700") -> CapitalFlow:
    rows = tuple(
        FlowRow(
            time=f"2024-06-03 09:{30 + i:02d}:00",
            timestamp=OPEN + 60 * i,
            in_flow=3.0 * i,
            super_in_flow=1.0 * i,
            big_in_flow=2.0 * i,
            mid_in_flow=0.0,
            sml_in_flow=0.0,
        )
        for i in range(4)
    )
    return CapitalFlow(
        security, "HK", 1, security.split(".")[1], DAY, rows, "2024-06-03 09:33:00", OPEN + 180
    )


class FakeClient:
    """Answers capital flow (and distribution, for the poller) from a script."""

    source = "opend://fake:1"
    connected = True

    def __init__(self, replies: list[Any] | None = None) -> None:
        self.replies = replies or []
        self.flow_requests: list[str] = []

    async def ensure_connected(self, max_attempts: int | None = None) -> None:
        return None

    async def get_capital_flow(self, security: str, timeout: float | None = None) -> CapitalFlow:
        self.flow_requests.append(security)
        reply = self.replies.pop(0) if self.replies else series(security)
        if isinstance(reply, Exception):
            raise reply
        assert isinstance(reply, CapitalFlow)
        return reply

    async def get_capital_distribution(self, security: str, timeout: float | None = None) -> Any:
        from streams.opend.snapshot import CapitalDistribution

        return CapitalDistribution(
            security, "HK", 1, "00700", 1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0,
            "2024-06-03 11:00:00", OPEN + 5400,
        )  # fmt: skip


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def fetcher(
    client: FakeClient, clock: FakeClock, published: list[tuple[str, bytes]], window: float = 30.0
) -> HistoryFetcher:
    async def publish(key: str, value: bytes) -> None:
        published.append((key, value))

    limiter = SlidingWindowLimiter(2, window, clock)
    return HistoryFetcher(client, publish, limiter, wall_clock=clock, sleep=_no_sleep)


async def test_a_fetched_series_is_published_and_named_by_the_next_snapshot() -> None:
    clock, published = FakeClock(ELEVEN), []
    client = FakeClient()
    history = fetcher(client, clock, published)
    assert await history.fetch("HK.00700")
    ((key, value),) = published
    record = CapitalFlowSeries.FromString(value)
    assert key == "HK.00700" and record.received_at_ms == int(clock.now * 1000)
    assert len(record.rows) == 4 and record.source == "opend://fake:1"
    assert history.ref("HK.00700") == record.received_at_ms and history.ref("HK.00005") == 0

    snapshots: list[bytes] = []

    async def publish_snapshot(key: str, value: bytes) -> None:
        snapshots.append(value)

    clock.now += 5
    poller = Poller(
        client, publish_snapshot, ["HK.00700"], SlidingWindowLimiter(10, 30.0, clock),
        ignore_market_hours=True, wall_clock=clock, sleep=_no_sleep, history=history,
    )  # fmt: skip
    await poller.step()
    snap = DistributionSnapshot.FromString(snapshots[0])
    assert snap.capital_flow_ref_ms == record.received_at_ms


async def test_failures_are_counted_and_a_rate_limit_waits_a_window() -> None:
    clock, published = FakeClock(ELEVEN), []
    client = FakeClient(
        [RateLimitError(-1, 0, "too frequent", 3211), UnknownSecurityError(-1, 0, "unknown", 3211)]
    )
    history = fetcher(client, clock, published)
    assert not await history.fetch("HK.00700")
    assert history.limiter.delay() > 0  # penalized: the whole window
    assert not await history.fetch("HK.99999")
    assert published == [] and history.ref("HK.00700") == 0
    described = history.describe()
    assert described["requests"]["rate_limited"] == 1 and described["requests"]["rejected"] == 1


async def test_before_a_poll_only_with_room_in_the_budget_and_never_waiting() -> None:
    clock, published = FakeClock(ELEVEN), []
    client = FakeClient()
    history = fetcher(client, clock, published, window=300.0)
    for _ in range(3):
        # Never seen, then still without baseline a minute later: wanted each time.
        await history.before_poll("HK.00700")
        history.planner.polled("HK.00700", clock.now)
        history.planner.observe_flow("HK.00700", flow("HK.00700", clock.now, "none"))
        clock.now += 61
    assert client.flow_requests == ["HK.00700", "HK.00700"]  # the budget holds 2 per 300 s
    assert history.stats.before_poll == 2


async def test_the_background_loop_spends_the_budget_on_the_planners_choices() -> None:
    clock, published = FakeClock(ELEVEN), []
    client = FakeClient()
    history = fetcher(client, clock, published)
    history.planner.observe_flow("HK.00001", flow("HK.00001", clock.now, "none"))
    history.planner.observe_flow("HK.00002", flow("HK.00002", clock.now))
    task = asyncio.create_task(history.run(lambda now: ["HK.00001", "HK.00002"], lambda: True))
    for _ in range(50):
        await asyncio.sleep(0)
        if client.flow_requests:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.flow_requests == ["HK.00001"]  # the one without a baseline, only


async def test_a_paced_budget_watches_and_each_series_reaches_the_scheduler() -> None:
    clock, published = FakeClock(ELEVEN), []
    client = FakeClient()

    async def publish(key: str, value: bytes) -> None:
        published.append((key, value))

    paced = SlidingWindowLimiter(30, 30.0, clock, spacing=1.0)
    history = HistoryFetcher(client, publish, paced, wall_clock=clock, sleep=_no_sleep)
    assert history.planner.watch_gap == 30.0  # 30 of its request intervals
    unpaced = fetcher(client, clock, published)
    assert unpaced.planner.watch_gap is None and unpaced.idle == 0.5
    fast = SlidingWindowLimiter(30, 1.5, clock, spacing=0.05)  # a simulator at speed 20
    assert HistoryFetcher(client, publish, fast, wall_clock=clock).idle == 0.05

    seen: list[tuple[str, str, list[tuple[float, float]]]] = []

    class Watching:
        def next(self, due: list[str], now: float) -> str | None:
            return due[0]

        def polled(self, security: str, now: float) -> None:
            return None

        def observe_flow(self, security: str, flow: Any) -> None:
            return None

        def observe_minutes(self, security: str, day: str, levels: Any) -> None:
            seen.append((security, day, list(levels)))

        def forget(self, security: str) -> None:
            return None

    async def ignore(key: str, value: bytes) -> None:
        return None

    Poller(
        client, ignore, ["HK.00700"], SlidingWindowLimiter(10, 30.0, clock),
        ignore_market_hours=True, wall_clock=clock, sleep=_no_sleep, history=history,
        scheduler=Watching(),
    )  # fmt: skip
    assert await history.fetch("HK.00700")
    # The minutes that are over at their marks, the one in progress at lastValidTime.
    levels = [(OPEN + 60 * i, 3.0 * i) for i in range(4)]
    assert seen == [("HK.00700", DAY, levels)]
