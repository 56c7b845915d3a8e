"""OpenDClient.get_capital_flow (3211) against the in-process simulator over real sockets."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from streams.domain.capital_flow import FLOW_CLASSES
from streams.opend import framing
from streams.opend.client import OpenDClient
from streams.opend.errors import (
    NoQuoteRightError,
    OpenDError,
    RateLimitError,
    UnknownSecurityError,
    UnsupportedSecurityError,
)
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.opend_sim.scenario import DEMO_PATH, load_scenario
from streams.opend_sim.server import OpenDSimulator
from streams.pb.opend import Qot_GetCapitalFlow_pb2 as capflow_pb
from tests.integration.harness import exchange

pytestmark = pytest.mark.integration

SCENARIO = load_scenario(DEMO_PATH)
T0 = SCENARIO.start + 1234  # 09:50:34 HKT on the demo day
FLOW = framing.PROTO_QOT_GET_CAPITAL_FLOW
DIST = framing.PROTO_QOT_GET_CAPITAL_DISTRIBUTION


def make_sim(**kwargs: object) -> OpenDSimulator:
    return OpenDSimulator(MarketModel(SCENARIO, seed=7), SimClock(T0, speed=0), **kwargs)  # type: ignore[arg-type]


async def test_the_series_is_the_models_and_agrees_with_3212_over_the_wire() -> None:
    async with make_sim() as sim, OpenDClient("127.0.0.1", sim.port, timeout=2) as client:
        for security in ("HK.00700", "HK.09988", "US.AAPL", "SH.600519"):
            got = await client.get_capital_flow(security)
            assert got == sim.market.capital_flow(security, T0)
        cf = await client.get_capital_flow("HK.00700")
        assert len(cf.rows) == 22 and cf.last_valid_time == "2024-06-03 09:50:34"
        # At each of a few minutes, 3212 asked then answers what the row says.
        for index in (0, 1, 10, 20):
            sim.clock.set(cf.rows[index].timestamp)
            dist = await client.get_capital_distribution("HK.00700")
            row = cf.rows[index]
            for field, cls in zip(FLOW_CLASSES, ("super", "big", "mid", "small"), strict=True):
                net = (getattr(dist, f"capital_in_{cls}") or 0.0) - (
                    getattr(dist, f"capital_out_{cls}") or 0.0
                )
                assert getattr(row, field) == pytest.approx(net, abs=1e-6)
        sim.clock.set(T0)
        now = await client.get_capital_distribution("HK.00700")
        assert now.update_time == cf.last_valid_time
        large = (now.capital_in_super or 0.0) + now.capital_in_big
        large -= (now.capital_out_super or 0.0) + now.capital_out_big
        assert cf.rows[-1].large_net == pytest.approx(large, abs=1e-6) and large != 0.0
        assert sim.counts[FLOW] == 5 and sim.counts[DIST] == 5


async def test_its_quota_is_its_own() -> None:
    async with (
        make_sim(
            rate_limit_requests=2, flow_rate_limit_requests=3, flow_rate_limit_window=60
        ) as sim,
        OpenDClient("127.0.0.1", sim.port, timeout=2) as client,
    ):
        for _ in range(2):
            await client.get_capital_distribution("HK.00700")
        with pytest.raises(RateLimitError):
            await client.get_capital_distribution("HK.00700")
        # 3212 spent: 3211 still answers, three times, then refuses in OpenD's words.
        for _ in range(3):
            assert (await client.get_capital_flow("HK.00700")).rows
        with pytest.raises(RateLimitError) as caught:
            await client.get_capital_flow("HK.00700")
        assert caught.value.proto_id == FLOW and "资金流向" in caught.value.ret_msg
        assert "at most 3 requests per 60 seconds" in caught.value.ret_msg
        # The account's quota: another connection is refused too.
        async with OpenDClient("127.0.0.1", sim.port, timeout=2) as other:
            with pytest.raises(RateLimitError):
                await other.get_capital_flow("HK.09988")
        assert sim.counts[FLOW] == 5 and sim.counts[DIST] == 3


async def test_per_connection_scope_gives_each_connection_its_flow_quota() -> None:
    async with (
        make_sim(rate_limit_scope="connection", flow_rate_limit_requests=1) as sim,
        OpenDClient("127.0.0.1", sim.port, timeout=2) as one,
    ):
        await one.get_capital_flow("HK.00700")
        with pytest.raises(RateLimitError):
            await one.get_capital_flow("HK.00700")
        async with OpenDClient("127.0.0.1", sim.port, timeout=2) as two:
            assert (await two.get_capital_flow("HK.00700")).security == "HK.00700"


async def test_refusals_as_for_capital_distribution() -> None:
    async with (
        make_sim(no_quote_right=frozenset({"US"})) as sim,
        OpenDClient("127.0.0.1", sim.port, timeout=2) as client,
    ):
        with pytest.raises(UnknownSecurityError):
            await client.get_capital_flow("HK.99999")
        with pytest.raises(UnsupportedSecurityError):
            await client.get_capital_flow("HK.800000")
        with pytest.raises(NoQuoteRightError) as caught:
            await client.get_capital_flow("US.AAPL")
        assert "无权限" in caught.value.ret_msg
        assert (await client.get_capital_flow("HK.00700")).code == "00700"
        assert sim.counts[FLOW] == 4


@pytest.mark.parametrize(
    ("at", "rows", "last_valid"),
    [
        ("2024-06-03T09:00:00", 0, "2024-06-03 09:00:00"),  # before the open
        ("2024-06-03T12:30:00", 151, "2024-06-03 12:00:00"),  # lunch
        ("2024-06-08T11:00:00", 0, "2024-06-08 11:00:00"),  # Saturday
    ],
)
async def test_closed_hours_as_3212_answers_them(at: str, rows: int, last_valid: str) -> None:
    t = datetime.fromisoformat(at + "+08:00").timestamp()
    async with make_sim() as sim, OpenDClient("127.0.0.1", sim.port, timeout=2) as client:
        sim.clock.set(t)
        cf = await client.get_capital_flow("HK.00700")
        dist = await client.get_capital_distribution("HK.00700")
    assert len(cf.rows) == rows and cf.last_valid_time == last_valid == dist.update_time
    assert cf.trading_day == last_valid[:10]


async def test_json_bodies_and_other_periods() -> None:
    init = json.dumps({"c2s": {"clientVer": 100, "clientID": "json"}}).encode()
    frames = [framing.encode_frame(1001, 1, init, fmt=framing.FMT_JSON)]
    for serial, period in ((2, 1), (3, 2)):
        body = {"c2s": {"security": {"market": 1, "code": "00700"}, "periodType": period}}
        frames.append(
            framing.encode_frame(FLOW, serial, json.dumps(body).encode(), framing.FMT_JSON)
        )
    async with make_sim() as sim:
        replies = await exchange(sim.port, frames, 3)
    _init, intraday, daily = replies
    reply = json.loads(intraday.body)
    assert intraday.fmt == framing.FMT_JSON and reply["retType"] == 0
    items = reply["s2c"]["flowItemList"]
    want = sim.market.capital_flow("HK.00700", T0)
    assert [i["time"] for i in items] == [r.time for r in want.rows]
    assert items[-1]["superInFlow"] == want.rows[-1].super_in_flow
    assert reply["s2c"]["lastValidTime"] == want.last_valid_time
    refused = json.loads(daily.body)
    assert refused["retType"] == -1 and "INTRADAY" in refused["retMsg"]
    assert sim.counts[FLOW] == 2


async def test_a_daily_period_is_refused_not_misread() -> None:
    async with make_sim() as sim, OpenDClient("127.0.0.1", sim.port, timeout=2) as client:
        req = capflow_pb.Request()
        req.c2s.security.market = 1
        req.c2s.security.code = "00700"
        req.c2s.periodType = 2
        with pytest.raises(OpenDError, match="INTRADAY"):
            await client.request(FLOW, req, capflow_pb.Response)
