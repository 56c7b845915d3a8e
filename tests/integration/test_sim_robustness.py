"""Bad peers: the simulator drops only the offending connection; the client fails clearly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from streams.opend import framing
from streams.opend.client import OpenDClient
from streams.opend.errors import ConnectionLost
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.opend_sim.scenario import parse_scenario
from streams.opend_sim.server import OpenDSimulator
from streams.pb.opend import InitConnect_pb2, Notify_pb2
from tests.integration.harness import exchange, wait_for

pytestmark = pytest.mark.integration

T0 = 1717380000.0  # 2024-06-03 10:00 HKT


@pytest.fixture
async def sim() -> AsyncIterator[OpenDSimulator]:
    server = OpenDSimulator(MarketModel(seed=1), SimClock(T0, speed=0), max_body=1024)
    await server.start()
    yield server
    await server.stop()


def init_body() -> bytes:
    req = InitConnect_pb2.Request()
    req.c2s.clientVer = 100
    req.c2s.clientID = "raw"
    return req.SerializeToString()


async def raw_exchange(port: int, data: bytes) -> bytes:
    """Send bytes, then read until the server closes (or 3 s pass)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 3)
    finally:
        writer.close()


async def still_serves(sim: OpenDSimulator) -> None:
    async with OpenDClient("127.0.0.1", sim.port, timeout=2) as client:
        assert (await client.get_capital_distribution("HK.00700")).security == "HK.00700"


async def test_bad_magic_closes_only_that_connection(sim: OpenDSimulator) -> None:
    bystander = OpenDClient("127.0.0.1", sim.port, timeout=2)
    await bystander.connect()
    try:
        reply = await raw_exchange(sim.port, b"GET / HTTP/1.1\r\n" + b"x" * 60)
        assert reply == b""  # closed, nothing sent back
        assert "BadMagicError" in sim.frame_errors[-1]
        assert bystander.connected
        await bystander.get_capital_distribution("HK.00700")
    finally:
        await bystander.close()
    await still_serves(sim)


async def test_wrong_sha1(sim: OpenDSimulator) -> None:
    frame = bytearray(framing.encode_frame(framing.PROTO_INIT_CONNECT, 77, init_body()))
    frame[20] ^= 0x55
    assert await raw_exchange(sim.port, bytes(frame)) == b""
    assert "BadSha1Error" in sim.frame_errors[-1] and "serialNo=77" in sim.frame_errors[-1]
    await still_serves(sim)


async def test_oversize_body_rejected_without_reading_it(sim: OpenDSimulator) -> None:
    header = framing.encode_frame(framing.PROTO_INIT_CONNECT, 5, b"x" * 5000)[: framing.HEADER_SIZE]
    assert await raw_exchange(sim.port, header) == b""
    assert "OversizeError" in sim.frame_errors[-1]
    await still_serves(sim)


async def test_abrupt_disconnect_mid_frame(sim: OpenDSimulator) -> None:
    frame = framing.encode_frame(framing.PROTO_INIT_CONNECT, 1, init_body())
    _reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    writer.write(frame[:30])
    await writer.drain()
    writer.transport.abort()
    for _ in range(50):
        if all(c.closed for c in sim.connections.values()):
            break
        await asyncio.sleep(0.02)
    (conn,) = sim.connections.values()
    assert conn.closed and "mid-frame" in conn.close_reason
    await still_serves(sim)


async def test_json_bodies_and_unknown_proto(sim: OpenDSimulator) -> None:
    body = json.dumps({"c2s": {"clientVer": 100, "clientID": "json"}}).encode()
    frames = await exchange(
        sim.port,
        [
            framing.encode_frame(1001, 3, body, fmt=framing.FMT_JSON),
            framing.encode_frame(9999, 4, b""),
        ],
        2,
    )
    init, unknown = frames
    assert init.fmt == framing.FMT_JSON and init.serial == 3
    reply = json.loads(init.body)
    assert reply["retType"] == 0 and reply["s2c"]["keepAliveInterval"] == 10
    failed = InitConnect_pb2.Response.FromString(unknown.body)
    assert unknown.serial == 4 and failed.retType == -1 and "9999" in failed.retMsg
    assert sim.counts[9999] == 1


async def test_client_reports_bad_frames_from_server() -> None:
    """A server that answers with a corrupted frame: the client fails with ConnectionLost."""

    async def bad_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        header = await reader.readexactly(framing.HEADER_SIZE)
        serial = int.from_bytes(header[8:12], "little")
        frame = bytearray(framing.encode_frame(framing.PROTO_INIT_CONNECT, serial, b"\x08\x00"))
        frame[-1] ^= 0xFF
        writer.write(bytes(frame))
        await writer.drain()
        await asyncio.wait_for(reader.read(), 10)  # open until the client drops it
        writer.close()

    server = await asyncio.start_server(bad_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = OpenDClient("127.0.0.1", port, timeout=2, connect_timeout=2)
        with pytest.raises(ConnectionLost, match="SHA1"):
            await client.connect()
        assert not client.connected
    finally:
        server.close()
        await server.wait_closed()


async def wait_closed(sim: OpenDSimulator, conn_id: int, seconds: float = 5.0) -> str:
    for _ in range(int(seconds / 0.02)):
        conn = sim.connections.get(conn_id)
        if conn is not None and conn.closed:
            return conn.close_reason
        await asyncio.sleep(0.02)
    raise AssertionError(f"connection {conn_id} still open: {sim.connections.get(conn_id)}")


async def test_connection_that_stops_mid_frame_is_closed() -> None:
    server = OpenDSimulator(MarketModel(seed=1), SimClock(T0, speed=0), frame_timeout=0.3)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(framing.encode_frame(framing.PROTO_INIT_CONNECT, 1, init_body())[:30])
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the server hung up
        writer.close()
        (conn,) = server.connections.values()
        assert "stopped mid-frame" in conn.close_reason and "30 bytes" in conn.close_reason
        await still_serves(server)
    finally:
        await server.stop()


async def test_connection_without_keep_alive_is_closed() -> None:
    server = OpenDSimulator(
        MarketModel(seed=1), SimClock(T0, speed=0), keep_alive_interval=1, keep_alive_misses=2
    )
    await server.start()
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(framing.encode_frame(framing.PROTO_INIT_CONNECT, 1, init_body()))
        await writer.drain()
        reason = await wait_closed(server, 1)
        assert reason == "no KeepAlive for 2s"
        writer.close()
        # Our client sends KeepAlive (at 4/5 of the interval) and stays connected.
        async with OpenDClient("127.0.0.1", server.port, timeout=2) as client:
            # Three KeepAlives take longer than the two seconds the server allows without.
            conn = server.connections[2]
            await wait_for(lambda: conn.counts[framing.PROTO_KEEP_ALIVE] >= 3, 10, "KeepAlives")
            assert client.connected
            assert not server.connections[2].closed
    finally:
        await server.stop()


def push_texts(pushes: list[framing.Frame]) -> list[str]:
    return [Notify_pb2.Response.FromString(p.body).s2c.event.desc for p in pushes]


async def wait_for_push(pushes: list[framing.Frame], text: str) -> None:
    for _ in range(250):
        if text in push_texts(pushes):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {text!r} push; got {push_texts(pushes)}")


async def test_notify_pushed_at_open_and_close_to_connections_that_asked() -> None:
    # 09:29:58 HKT, 100x: the market opens two simulated seconds later.
    start = T0 - 1800 - 2
    server = OpenDSimulator(
        MarketModel(seed=1), SimClock(start, speed=100), market_watch_interval=0.02
    )
    await server.start()
    pushes: list[framing.Frame] = []
    try:
        async with (
            OpenDClient("127.0.0.1", server.port, timeout=2, on_push=pushes.append),
            OpenDClient("127.0.0.1", server.port, timeout=2, recv_notify=False) as quiet,
        ):
            await wait_for_push(pushes, "HK market open")
            assert quiet.pushes == 0  # it did not ask for notifications
            assert {p.proto_id for p in pushes} == {framing.PROTO_NOTIFY}
            note = Notify_pb2.Response.FromString(pushes[0].body)
            assert note.s2c.type == Notify_pb2.NotifyType_GtwEvent
            # At the lunch break HK closes: jump there and the next push says so.
            server.clock.set(T0 + 2 * 3600 - 1, speed=100)  # 11:59:59 HKT
            await wait_for_push(pushes, "HK market closed")
    finally:
        await server.stop()


async def test_global_state_follows_the_scenario_calendar() -> None:
    scenario = parse_scenario(
        {"start": "2024-06-03T09:30:00+08:00", "holidays": {"HK": ["2024-06-03"]}}
    )
    server = OpenDSimulator(MarketModel(scenario), SimClock(T0, speed=0))
    await server.start()
    try:
        async with OpenDClient("127.0.0.1", server.port, timeout=2) as client:
            state = await client.get_global_state()
            assert state.marketHK == 6  # closed: a holiday, though 10:00 on a Monday
            server.clock.set(T0 + 86400)
            assert (await client.get_global_state()).marketHK == 3  # Tuesday morning
    finally:
        await server.stop()
