"""OpenD's market state decides when budget is spent, against the simulator's clock.

The simulator's clock is set to a trading session (or a holiday) whatever the wall
clock says: a poller that asks OpenD polls in the session and spends nothing on the
holiday, where the static hours table alone would get both wrong. The last test runs
a real worker without --ignore-market-hours.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streams.opend.client import OpenDClient
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.opend_sim.scenario import parse_scenario
from streams.opend_sim.server import OpenDSimulator
from streams.polling import market_state
from streams.timing.ratelimit import SlidingWindowLimiter
from tests.fakes import HK_OPEN, WEEKEND, FakeClock, poller_on
from tests.integration.harness import (
    FAST_LIMIT,
    RequestLog,
    Topics,
    Worker,
    start_worker,
    wait_for,
    workers_stopped,
)

pytestmark = pytest.mark.integration

SCENARIO = parse_scenario(
    {"start": "2024-06-03T09:30:00+08:00", "holidays": {"HK": ["2024-06-04"]}}
)
IN_SESSION = SCENARIO.start + 1800  # Monday 2024-06-03 10:00 HKT
HOLIDAY = IN_SESSION + 86400  # Tuesday 10:00 HKT, a holiday in the scenario


async def poll_for_a_while(sim_time: float, wall: float) -> tuple[list[str], OpenDSimulator]:
    sim = OpenDSimulator(MarketModel(SCENARIO), SimClock(sim_time, speed=0))
    await sim.start()
    clock = FakeClock(wall)
    client = OpenDClient("127.0.0.1", sim.port, timeout=2)
    try:
        poller, published = poller_on(
            clock, client, ["HK.00700"], limiter=SlidingWindowLimiter(1000, 1.0, clock),
            market_state=market_state.for_client(client),
        )  # fmt: skip
        for _ in range(10):
            await poller.step()
        assert poller.market_state is not None
        assert poller.market_state.source("HK", clock.now) == "opend"
    finally:
        await client.close()
        await sim.stop()
    return [key for key, _ in published], sim


async def test_polls_in_the_simulated_session_though_the_table_says_closed() -> None:
    published, sim = await poll_for_a_while(IN_SESSION, WEEKEND)  # the hours table: all closed
    assert published == ["HK.00700"] * 10
    assert sim.counts[1002] >= 1  # it asked OpenD for the market state


async def test_spends_nothing_on_a_holiday_though_the_table_says_open() -> None:
    published, sim = await poll_for_a_while(HOLIDAY, HK_OPEN)  # the hours table: HK open
    assert published == [] and sim.counts[3212] == 0
    assert sim.counts[1002] >= 1


def polling_status(worker: Worker) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/polling/", timeout=5) as r:
        return dict(json.loads(r.read()))


async def test_worker_polls_a_simulated_session_without_ignore_market_hours(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    sim = OpenDSimulator(MarketModel(SCENARIO), SimClock(IN_SESSION, speed=0))
    await sim.start()
    requests = RequestLog(sim)
    worker = start_worker(
        kafka_bootstrap, Topics(topic_prefix), f"{topic_prefix}-ms", tmp_path,
        opend_port=sim.port, extra=FAST_LIMIT, ignore_market_hours=False,
    )  # fmt: skip
    try:
        with workers_stopped(worker):
            await wait_for(lambda: len(requests.times) >= 3, 90, "capital distribution requests")
            status = polling_status(worker)
            assert status["poller"] is True
            assert status["markets"]["HK"] == {"open": True, "state": 3, "source": "opend"}
            # The simulated market closes (a holiday): OpenD pushes a Notify, the worker
            # asks again, and no more budget is spent.
            sim.clock.set(HOLIDAY)
            await wait_for(lambda: sim.counts[1002] >= 2, 60, "a market state refresh")
            await wait_for(
                lambda: polling_status(worker)["markets"]["HK"]["open"] is False,
                30,
                "the worker to see HK closed",
            )
            settled = len(requests.times)
            await asyncio.sleep(1.0)  # ten requests' time at FAST_LIMIT's pace
            assert len(requests.times) <= settled + 1, worker.tail()
            assert worker.running(), worker.tail()
    finally:
        await sim.stop()
