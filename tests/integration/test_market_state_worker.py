"""OpenD's market state decides when budget is spent, against the simulator's clock.

The simulator's clock is set to a trading session (or a holiday) whatever the wall
clock says: a poller that asks OpenD polls in the session and spends nothing on the
holiday, where the static hours table alone would get both wrong. The last test runs
a real worker without --ignore-market-hours.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from streams.broker.local import free_port
from streams.opend.client import OpenDClient
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.opend_sim.scenario import parse_scenario
from streams.opend_sim.server import OpenDSimulator
from streams.polling import market_state
from streams.polling.poller import Poller
from streams.timing.ratelimit import SlidingWindowLimiter
from tests.integration.harness import RequestLog, Topics, Worker, wait_for, workers_stopped

pytestmark = pytest.mark.integration

SCENARIO = parse_scenario(
    {"start": "2024-06-03T09:30:00+08:00", "holidays": {"HK": ["2024-06-04"]}}
)
IN_SESSION = SCENARIO.start + 1800  # Monday 2024-06-03 10:00 HKT
HOLIDAY = IN_SESSION + 86400  # Tuesday 10:00 HKT, a holiday in the scenario
SATURDAY_WALL = datetime(2026, 11, 28, 2, 0, tzinfo=UTC).timestamp()  # table: all closed
TUESDAY_WALL = datetime(2026, 11, 24, 2, 0, tzinfo=UTC).timestamp()  # table: HK open


class WallClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def poll_for_a_while(sim_time: float, wall: float) -> tuple[list[str], OpenDSimulator]:
    sim = OpenDSimulator(MarketModel(SCENARIO), SimClock(sim_time, speed=0))
    await sim.start()
    published: list[str] = []

    async def publish(key: str, value: bytes) -> None:
        published.append(key)

    clock = WallClock(wall)
    client = OpenDClient("127.0.0.1", sim.port, timeout=2)
    try:
        poller = Poller(
            client, publish, ["HK.00700"], SlidingWindowLimiter(1000, 1.0, clock),
            wall_clock=clock, sleep=clock.sleep, market_state=market_state.for_client(client),
        )  # fmt: skip
        for _ in range(10):
            await poller.step()
        assert poller.market_state is not None
        assert poller.market_state.source("HK", clock.now) == "opend"
    finally:
        await client.close()
        await sim.stop()
    return published, sim


async def test_polls_in_the_simulated_session_though_the_table_says_closed() -> None:
    published, sim = await poll_for_a_while(IN_SESSION, SATURDAY_WALL)
    assert published == ["HK.00700"] * 10
    assert sim.counts[1002] >= 1  # it asked OpenD for the market state


async def test_spends_nothing_on_a_holiday_though_the_table_says_open() -> None:
    published, sim = await poll_for_a_while(HOLIDAY, TUESDAY_WALL)
    assert published == [] and sim.counts[3212] == 0
    assert sim.counts[1002] >= 1


async def test_worker_polls_a_simulated_session_without_ignore_market_hours(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    sim = OpenDSimulator(MarketModel(SCENARIO), SimClock(IN_SESSION, speed=0))
    await sim.start()
    requests = RequestLog(sim)
    web_port = free_port()
    cmd = [
        sys.executable, "-m", "streams.cli", "worker",
        "--kafka-bootstrap", kafka_bootstrap, "--opend-port", str(sim.port),
        "--watchlist", "HK.00700", "--app-id", f"{topic_prefix}-ms",
        "--web-port", str(web_port), "--data-dir", str(tmp_path / "w"),
        "--rate-limit-requests", "100", "--rate-limit-window", "10", "--no-leader-grace",
        "--loglevel", "info", *Topics(topic_prefix).args(),
    ]  # fmt: skip
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    worker = Worker(proc, log, web_port)
    try:
        with workers_stopped(worker):
            await wait_for(lambda: len(requests.times) >= 3, 90, "capital distribution requests")
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{web_port}/polling/") as resp,
            ):
                status = await resp.json()
            assert status["poller"] is True
            assert status["markets"]["HK"] == {"open": True, "state": 3, "source": "opend"}
            # The simulated market closes (a holiday): OpenD pushes a Notify, the worker
            # asks again, and no more budget is spent.
            sim.clock.set(HOLIDAY)
            await wait_for(lambda: sim.counts[1002] >= 2, 60, "a market state refresh")
            settled = len(requests.times)
            await asyncio.sleep(3)
            assert len(requests.times) <= settled + 1, worker.tail()
            assert proc.poll() is None, worker.tail()
    finally:
        await sim.stop()
