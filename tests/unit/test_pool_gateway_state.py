"""Per-gateway OpenD state in the pool: each gateway's poller has its own market state
(asked of its own client) and its own refusals (quote rights are per account)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace

from streams.polling import spread
from streams.polling.gateways import Gateway, parse_gateways
from streams.polling.market_state import STATE_MORNING, MarketState
from streams.polling.pool import GatewayClient, GatewayPool
from streams.polling.scheduler import RoundRobin
from streams.timing.ratelimit import SlidingWindowLimiter
from tests.fakes import HK_OPEN, DeadlineClock, Done, FakeClock, FakeOpenD
from tests.unit.test_pool import WATCHLIST, Board

STATE_CLOSED = 6  # Qot_Common.QotMarketState Closed


class NoRightGateway(FakeOpenD):
    """An account without the quote right for some securities, counting the market-state
    asks its OpenD gets."""

    def __init__(self, label: str, clock: FakeClock, refused: set[str]) -> None:
        super().__init__(clock, label=label, no_right=refused)
        self.state_asks = 0


def make_pool(
    clock: FakeClock, fakes: dict[str, NoRightGateway], states: dict[str, int]
) -> tuple[GatewayPool, list[tuple[str, GatewayClient]]]:
    gateways = parse_gateways(",".join(f"{label}:1={label}" for label in fakes))
    board = Board(gateways)
    board.clock = clock
    built: list[tuple[str, GatewayClient]] = []

    def market_state_of(gw: Gateway, client: GatewayClient) -> MarketState:
        built.append((gw.label, client))
        fake = fakes[gw.label]

        async def fetch() -> Mapping[str, int]:
            fake.state_asks += 1
            return {"HK": states[gw.label]}

        return MarketState(fetch)

    async def publish(key: str, value: bytes) -> None:
        return None

    pool = GatewayPool(
        gateways, WATCHLIST, publish, board,
        make_client=lambda gw: fakes[gw.label],
        make_limiter=lambda: SlidingWindowLimiter(30, 30.0, clock, spacing=1.0),
        make_scheduler=RoundRobin, make_market_state=market_state_of,
        is_owner=lambda k: True, handover_grace=False, wall_clock=clock, clock=clock,
        sleep=clock.sleep,
    )  # fmt: skip
    return pool, built


async def run(pool: GatewayPool) -> None:
    await pool.acquire(set(pool.pollers))
    tasks = [task for gp in pool.pollers.values() for task in gp.tasks]
    for r in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(r, BaseException) and not isinstance(r, Done):
            raise r


async def test_each_gateway_asks_its_own_opend_for_market_state() -> None:
    clock = DeadlineClock(HK_OPEN, HK_OPEN + 60)
    # b's OpenD says HK is closed (say, its account's view of a holiday): b spends nothing.
    fakes = {"a": NoRightGateway("a", clock, set()), "b": NoRightGateway("b", clock, set())}
    pool, built = make_pool(clock, fakes, {"a": STATE_MORNING, "b": STATE_CLOSED})
    await run(pool)
    assert sorted(label for label, _ in built) == ["a", "b"]
    assert all(client is fakes[label] for label, client in built)
    assert fakes["a"].state_asks >= 1 and fakes["b"].state_asks >= 1
    assert fakes["a"].requests and not fakes["b"].requests
    view = pool.polling_status(clock.now)
    by_label = {g["gateway"]: g for g in view["gateways"]}
    assert by_label["a"]["markets"]["HK"] == {"open": True, "state": 3, "source": "opend"}
    assert by_label["b"]["markets"]["HK"]["open"] is False


async def test_refusals_are_kept_per_gateway_and_merged_in_the_worker_view() -> None:
    clock = DeadlineClock(HK_OPEN, HK_OPEN + 60)
    a_share = spread.share(WATCHLIST, ["a", "b"], "a")
    refused = a_share[0]
    fakes = {
        "a": NoRightGateway("a", clock, {refused}),
        "b": NoRightGateway("b", clock, set()),
    }
    pool, _ = make_pool(clock, fakes, {"a": STATE_MORNING, "b": STATE_MORNING})
    seen: dict[str, object] = {}

    async def look() -> None:  # the worker's views while both gateways are polled
        while clock.now < HK_OPEN + 50:
            await asyncio.sleep(0)
        seen["rejections"] = [e.security for e in pool.rejections()]
        seen["polling"] = pool.polling_status(clock.now)
        seen["status"] = {g["gateway"]: g for g in pool.status()}

    looker = asyncio.create_task(look())
    await run(pool)
    await looker
    # Asked once, then backed off (a minute after the first refusal): a polls the rest.
    assert [s for _, s in fakes["a"].requests].count(refused) == 1
    a, b = pool.pollers[0].poller, pool.pollers[1].poller
    assert [e.security for e in a.rejections.entries()] == [refused]
    assert b.rejections.entries() == []
    assert a.stats.rejected == 1 and b.stats.rejected == 0
    assert seen["rejections"] == [refused]
    view = seen["polling"]
    assert isinstance(view, dict)
    assert [r["security"] for r in view["rejected"]] == [refused]
    assert set(view["active"]) == set(WATCHLIST) - {refused}
    assert {g["gateway"]: g["owned"] for g in view["gateways"]} == {"a": True, "b": True}
    status = seen["status"]
    assert isinstance(status, dict)
    assert status["a"]["requests"]["rejected"] == 1
    assert [r["security"] for r in status["a"]["backed_off"]] == [refused]
    assert status["b"]["backed_off"] == []


class Recorder(RoundRobin):
    """Round-robin that remembers the flows it was shown."""

    def __init__(self) -> None:
        super().__init__()
        self.flows: list[tuple[str, Mapping[str, object]]] = []

    def observe_flow(self, security: str, flow: Mapping[str, object]) -> None:
        self.flows.append((security, flow))


def test_one_flow_feed_reaches_every_gateways_scheduler() -> None:
    clock = FakeClock(HK_OPEN, HK_OPEN + 60)
    gateways = parse_gateways("a:1=a,b:2=b,c:3=c")
    fakes = {gw.label: FakeOpenD(clock, label=gw.label) for gw in gateways}

    async def publish(key: str, value: bytes) -> None:
        return None

    pool = GatewayPool(
        gateways, WATCHLIST, publish, Board(gateways),
        make_client=lambda gw: fakes[gw.label],
        make_limiter=lambda: SlidingWindowLimiter(30, 30.0, clock, spacing=1.0),
        make_scheduler=Recorder, is_owner=lambda k: k != 2, wall_clock=clock, clock=clock,
        sleep=clock.sleep,
    )  # fmt: skip
    schedulers = [gp.poller.scheduler for gp in pool.pollers.values()]
    assert len({id(s) for s in schedulers}) == 3  # one scheduler per gateway
    flow = {"security": "HK.00001", "regime": "INFLOW", "r_w": 1.0}
    pool.observe_flow("HK.00001", flow)
    # Every gateway's, owned here or not: a security may move to any of them.
    for scheduler in schedulers:
        assert isinstance(scheduler, Recorder)
        assert scheduler.flows == [("HK.00001", flow)]


def test_the_polling_service_is_built_before_the_event_loop_runs() -> None:
    """``capflow worker`` builds the pipeline (and its polling service, flow feed
    included) before Faust starts the loop: nothing may need a running loop then."""
    from streams import cli
    from streams.polling.service import PollingService
    from streams.settings import PipelineSettings
    from streams.settings.flags import from_args

    args = cli.build_parser().parse_args(
        ["worker", "--kafka-bootstrap", "127.0.0.1:9", "--schedule", "adaptive",
         "--opend", "127.0.0.1:11111=a,127.0.0.1:11112=b"]
    )  # fmt: skip
    config = from_args(args, PipelineSettings)
    service = PollingService(config)
    assert service.feedback is not None and service.flows_read() == 0
    assert [gp.gateway.label for gp in service.pool.pollers.values()] == ["a", "b"]
    # Round-robin reads flows only for the minute-history planners.
    round_robin = replace(config, poller=replace(config.poller, schedule="round-robin"))
    assert PollingService(round_robin).flows_read() == 0
    without = replace(round_robin, poller=replace(round_robin.poller, minute_history=False))
    service = PollingService(without)
    assert service.flows_read() is None and service.series_publisher is None
    assert all(gp.history is None for gp in service.pool.pollers.values())
