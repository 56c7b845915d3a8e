"""OpenDClient against the in-process simulator over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from streams.opend import framing
from streams.opend.client import OpenDClient
from streams.opend.errors import (
    ConnectionLost,
    NoQuoteRightError,
    RateLimitError,
    RequestTimeout,
    UnknownGroupError,
    UnknownSecurityError,
    UnsupportedSecurityError,
)
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.opend_sim.scenario import DEMO_PATH, load_scenario
from streams.opend_sim.server import OpenDSimulator
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration

SCENARIO = load_scenario(DEMO_PATH)
T0 = SCENARIO.start + 1200  # 09:50 HKT on the demo day


def make_sim(**kwargs: object) -> OpenDSimulator:
    return OpenDSimulator(MarketModel(SCENARIO, seed=7), SimClock(T0, speed=0), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def sim() -> AsyncIterator[OpenDSimulator]:
    server = make_sim()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(sim: OpenDSimulator) -> AsyncIterator[OpenDClient]:
    c = OpenDClient("127.0.0.1", sim.port, timeout=2.0)
    await c.connect()
    yield c
    await c.close()


async def test_values_match_the_model(sim: OpenDSimulator, client: OpenDClient) -> None:
    assert client.connected and client.keep_alive_interval == 10 and client.conn_id >= 1
    for security in ("HK.00700", "HK.09988", "HK.00005", "US.AAPL", "SH.600519"):
        got = await client.get_capital_distribution(security)
        assert got == sim.market.distribution(security, T0)
        assert got.security == security
    sim.clock.advance(60)
    later = await client.get_capital_distribution("HK.00700")
    assert later.update_timestamp == T0 + 60
    assert later.update_time == "2024-06-03 09:51:00"
    assert sim.counts[framing.PROTO_QOT_GET_CAPITAL_DISTRIBUTION] == 6
    assert sim.counts[framing.PROTO_INIT_CONNECT] == 1


async def test_concurrent_requests_are_matched_by_serial(
    sim: OpenDSimulator, client: OpenDClient
) -> None:
    codes = ["HK.00700", "HK.09988", "HK.03690", "HK.01810", "HK.00005"]
    results = await asyncio.gather(*(client.get_capital_distribution(c) for c in codes))
    assert [r.security for r in results] == codes


async def test_rate_limit_reply_raises() -> None:
    async with make_sim(rate_limit_requests=3, rate_limit_window=30) as sim:
        async with OpenDClient("127.0.0.1", sim.port, timeout=2) as client:
            for _ in range(3):
                await client.get_capital_distribution("HK.00700")
            with pytest.raises(RateLimitError) as info:
                await client.get_capital_distribution("HK.00700")
            assert info.value.ret_type == -1 and "频率" in info.value.ret_msg
            # KeepAlive is not counted against the quota.
            await client.keep_alive()
        # The quota belongs to the account: a second connection is limited too.
        async with OpenDClient("127.0.0.1", sim.port, timeout=2) as other:
            with pytest.raises(RateLimitError):
                await other.get_capital_distribution("HK.00700")
        assert sim.counts[framing.PROTO_QOT_GET_CAPITAL_DISTRIBUTION] == 5


async def test_unknown_and_unsupported(client: OpenDClient) -> None:
    with pytest.raises(UnknownSecurityError):
        await client.get_capital_distribution("HK.99999")
    with pytest.raises(UnsupportedSecurityError):
        await client.get_capital_distribution("HK.800000")
    assert (await client.get_capital_distribution("HK.00700")).code == "00700"


async def test_no_quote_right_in_opends_words() -> None:
    async with (
        make_sim(no_quote_right=frozenset({"US"})) as sim,
        OpenDClient("127.0.0.1", sim.port, timeout=2) as client,
    ):
        with pytest.raises(NoQuoteRightError) as caught:
            await client.get_capital_distribution("US.AAPL")
        assert "无权限" in caught.value.ret_msg and "no quote right" in caught.value.ret_msg
        assert (await client.get_capital_distribution("HK.00700")).code == "00700"


async def test_timeout_keeps_connection(sim: OpenDSimulator, client: OpenDClient) -> None:
    sim.silent_proto_ids.add(framing.PROTO_QOT_GET_CAPITAL_DISTRIBUTION)
    with pytest.raises(RequestTimeout):
        await client.get_capital_distribution("HK.00700", timeout=0.2)
    sim.silent_proto_ids.clear()
    assert client.connected
    assert (await client.get_capital_distribution("HK.00700")).security == "HK.00700"


async def test_server_close_fails_pending_with_connection_lost(
    sim: OpenDSimulator, client: OpenDClient
) -> None:
    sim.silent_proto_ids.add(framing.PROTO_QOT_GET_CAPITAL_DISTRIBUTION)
    pending = asyncio.create_task(client.get_capital_distribution("HK.00700", timeout=5))
    await asyncio.sleep(0.1)
    await sim.disconnect_all()
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(pending, 2)
    await asyncio.sleep(0.05)
    assert not client.connected
    with pytest.raises(ConnectionLost):
        await client.get_capital_distribution("HK.00700")


async def test_client_close_fails_pending(sim: OpenDSimulator, client: OpenDClient) -> None:
    sim.silent_proto_ids.add(framing.PROTO_QOT_GET_CAPITAL_DISTRIBUTION)
    pending = asyncio.create_task(client.get_capital_distribution("HK.00700", timeout=5))
    await asyncio.sleep(0.1)
    await client.close()
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(pending, 2)


async def test_reconnect_with_backoff() -> None:
    sim = make_sim()
    await sim.start()
    port = sim.port
    client = OpenDClient("127.0.0.1", port, timeout=2, backoff_initial=0.05, backoff_max=0.2)
    try:
        await client.ensure_connected()
        await sim.stop()
        await asyncio.sleep(0.05)
        assert not client.connected
        with pytest.raises(ConnectionLost):
            await client.ensure_connected(max_attempts=2)

        # Server comes back on the same port while the client keeps retrying.
        revived = make_sim(port=port)
        retry = asyncio.create_task(client.ensure_connected())
        await asyncio.sleep(0.3)
        await revived.start()
        await asyncio.wait_for(retry, 5)
        assert client.connected and client.connects == 2
        assert (await client.get_capital_distribution("HK.00700")).security == "HK.00700"
        await revived.stop()
    finally:
        await client.close()
        await sim.stop()


async def test_keep_alive_at_server_interval() -> None:
    async with (
        make_sim(keep_alive_interval=1) as sim,
        OpenDClient("127.0.0.1", sim.port, timeout=2) as client,
    ):
        assert client.keep_alive_interval == 1
        (conn,) = sim.connections.values()
        await wait_for(lambda: conn.counts[framing.PROTO_KEEP_ALIVE] >= 1, 5, "a KeepAlive", 0.05)
        state = await client.get_global_state()
        assert state.qotLogined and state.marketHK == 3  # morning session at 09:50 HKT


async def test_a_watchlist_group_as_the_simulator_serves_it() -> None:
    server = make_sim(user_groups={"Tech": ["HK.00700", "US.AAPL", "HK.800000"], "Empty": []})
    await server.start()
    try:
        async with OpenDClient("127.0.0.1", server.port, timeout=2.0) as c:
            # In the group's order, indices included (OpenD refuses to poll those later).
            assert await c.get_user_security("Tech") == ["HK.00700", "US.AAPL", "HK.800000"]
            assert await c.get_user_security("Empty") == []
            with pytest.raises(UnknownGroupError) as caught:
                await c.get_user_security("tech")  # names are matched exactly
            assert caught.value.proto_id == framing.PROTO_QOT_GET_USER_SECURITY
            assert "unknown watchlist group tech" in caught.value.ret_msg
            server.user_groups["Tech"].remove("US.AAPL")  # edited in the app: read anew
            server.user_groups["New"] = ["SZ.000001"]
            assert await c.get_user_security("Tech") == ["HK.00700", "HK.800000"]
            assert await c.get_user_security("New") == ["SZ.000001"]
        assert server.counts[framing.PROTO_QOT_GET_USER_SECURITY] == 5
    finally:
        await server.stop()
