"""OpenDClient against a scripted fake OpenD: pushes, colliding serials, split frames.

The fake is a plain asyncio server written here, so each test controls exactly which
bytes arrive when: a Notify push carrying the serialNo of a pending request, frames
cut into pieces, a peer that never answers InitConnect or closes while a request
waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from streams.observability.metrics import REGISTRY
from streams.opend import framing
from streams.opend.client import CLIENT_VER, KEEP_ALIVE_FACTOR, OpenDClient
from streams.opend.errors import ConnectionLost, RequestTimeout
from streams.pb.opend import InitConnect_pb2 as init_pb
from streams.pb.opend import KeepAlive_pb2 as keepalive_pb
from streams.pb.opend import Notify_pb2 as notify_pb
from streams.pb.opend import Qot_GetCapitalDistribution_pb2 as capdist_pb

pytestmark = pytest.mark.integration

Handler = Callable[["FakeOpenD", framing.Frame, asyncio.StreamWriter], Awaitable[None]]


def notify_body(desc: str = "HK market open") -> bytes:
    note = notify_pb.Response(retType=0)
    note.s2c.type = notify_pb.NotifyType_GtwEvent
    note.s2c.event.eventType = 0
    note.s2c.event.desc = desc
    return note.SerializeToString()


def capdist_reply() -> bytes:
    rsp = capdist_pb.Response(retType=0)
    s2c = rsp.s2c
    s2c.capitalInBig, s2c.capitalInMid, s2c.capitalInSmall = 3.0, 4.0, 5.0
    s2c.capitalOutBig, s2c.capitalOutMid, s2c.capitalOutSmall = 1.0, 2.0, 3.0
    s2c.capitalInSuper, s2c.capitalOutSuper = 7.0, 6.0
    s2c.updateTime = "2024-06-03 10:00:00"
    s2c.updateTimestamp = 1717380000.0
    return rsp.SerializeToString()


async def write_in_pieces(writer: asyncio.StreamWriter, data: bytes, size: int = 7) -> None:
    """One frame in many TCP writes, each drained and followed by a yield."""
    for i in range(0, len(data), size):
        writer.write(data[i : i + size])
        await writer.drain()
        await asyncio.sleep(0.01)


@dataclass
class FakeOpenD:
    """Answers InitConnect and KeepAlive; anything else goes to ``on_request``."""

    on_request: Handler | None = None
    keep_alive_interval: int = 10
    answer_init: bool = True
    inits: list[init_pb.C2S] = field(default_factory=list)
    keep_alives: int = 0
    server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = framing.FrameDecoder()
        try:
            while chunk := await reader.read(65536):
                for frame in decoder.feed(chunk):
                    await self.dispatch(frame, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def dispatch(self, frame: framing.Frame, writer: asyncio.StreamWriter) -> None:
        if frame.proto_id == framing.PROTO_INIT_CONNECT:
            self.inits.append(init_pb.Request.FromString(frame.body).c2s)
            if not self.answer_init:
                return
            rsp = init_pb.Response(retType=0)
            rsp.s2c.serverVer, rsp.s2c.loginUserID, rsp.s2c.connID = 904, 1, 77
            rsp.s2c.connAESKey = "0123456789abcdef"
            rsp.s2c.keepAliveInterval = self.keep_alive_interval
            writer.write(
                framing.encode_frame(frame.proto_id, frame.serial, rsp.SerializeToString())
            )
        elif frame.proto_id == framing.PROTO_KEEP_ALIVE:
            self.keep_alives += 1
            rsp_ka = keepalive_pb.Response(retType=0)
            rsp_ka.s2c.time = 1
            body = rsp_ka.SerializeToString()
            writer.write(framing.encode_frame(frame.proto_id, frame.serial, body))
        elif self.on_request is not None:
            await self.on_request(self, frame, writer)
        await writer.drain()


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenD]:
    server = FakeOpenD()
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    yield server
    server.server.close()


def push_count(proto_id: int) -> float:
    value = REGISTRY.get_sample_value("capflow_opend_pushes_total", {"proto_id": str(proto_id)})
    return value or 0.0


async def test_push_with_the_pending_serial_is_not_taken_as_the_reply(fake: FakeOpenD) -> None:
    async def push_then_reply(
        fake: FakeOpenD, frame: framing.Frame, writer: asyncio.StreamWriter
    ) -> None:
        # A Notify that happens to carry the request's serialNo, split in pieces, then
        # the real reply, also split: the client must wait for the 3212 reply.
        await write_in_pieces(
            writer, framing.encode_frame(framing.PROTO_NOTIFY, frame.serial, notify_body())
        )
        await write_in_pieces(
            writer, framing.encode_frame(frame.proto_id, frame.serial, capdist_reply())
        )

    fake.on_request = push_then_reply
    pushes: list[framing.Frame] = []
    before = push_count(framing.PROTO_NOTIFY)
    async with OpenDClient("127.0.0.1", fake.port, timeout=3, on_push=pushes.append) as client:
        dist = await client.get_capital_distribution("HK.00700")
    assert dist.update_time == "2024-06-03 10:00:00"
    assert dist.capital_in_big == 3.0 and dist.capital_out_small == 3.0
    assert [p.proto_id for p in pushes] == [framing.PROTO_NOTIFY]
    assert notify_pb.Response.FromString(pushes[0].body).s2c.event.desc == "HK market open"
    assert push_count(framing.PROTO_NOTIFY) == before + 1


async def test_reply_with_another_protocols_serial_is_not_matched(fake: FakeOpenD) -> None:
    async def wrong_proto_then_reply(
        fake: FakeOpenD, frame: framing.Frame, writer: asyncio.StreamWriter
    ) -> None:
        # A non-push frame of another protoID with the same serial: dropped, not parsed.
        stray = keepalive_pb.Response(retType=0)
        stray.s2c.time = 5
        writer.write(
            framing.encode_frame(framing.PROTO_KEEP_ALIVE, frame.serial, stray.SerializeToString())
        )
        writer.write(framing.encode_frame(frame.proto_id, frame.serial, capdist_reply()))

    fake.on_request = wrong_proto_then_reply
    async with OpenDClient("127.0.0.1", fake.port, timeout=3) as client:
        dist = await client.get_capital_distribution("HK.00700")
    assert dist.capital_in_super == 7.0


async def test_init_connect_fields_as_the_sdk_fills_them(fake: FakeOpenD) -> None:
    async with OpenDClient("127.0.0.1", fake.port, timeout=3, client_id="cid-1"):
        pass
    (c2s,) = fake.inits
    assert c2s.clientVer == CLIENT_VER and c2s.clientID == "cid-1"
    assert c2s.recvNotify is True  # the SDK asks for notifications
    assert c2s.packetEncAlgo == -1  # PacketEncAlgo_None without an RSA key
    assert c2s.pushProtoFmt == framing.FMT_PROTOBUF
    assert c2s.programmingLanguage == "Python"
    assert c2s.HasField("aiType") and c2s.aiType == 0


async def test_init_connect_waits_the_client_timeout(fake: FakeOpenD) -> None:
    fake.answer_init = False
    client = OpenDClient("127.0.0.1", fake.port, timeout=0.3)
    with pytest.raises(RequestTimeout) as caught:
        await client.connect()
    assert caught.value.proto_id == framing.PROTO_INIT_CONNECT
    assert caught.value.timeout == 0.3
    assert not client.connected


async def test_receive_failure_is_not_called_a_send_failure(fake: FakeOpenD) -> None:
    async def close_instead(
        fake: FakeOpenD, frame: framing.Frame, writer: asyncio.StreamWriter
    ) -> None:
        writer.close()

    fake.on_request = close_instead
    async with OpenDClient("127.0.0.1", fake.port, timeout=3) as client:
        with pytest.raises(ConnectionLost) as caught:
            await client.get_capital_distribution("HK.00700")
    assert "send failed" not in str(caught.value)
    assert "closed by peer" in str(caught.value)


async def test_keep_alive_at_four_fifths_of_the_interval(fake: FakeOpenD) -> None:
    fake.keep_alive_interval = 10
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0.01)

    async with OpenDClient("127.0.0.1", fake.port, timeout=3, sleep=record):
        for _ in range(200):
            if fake.keep_alives >= 2:
                break
            await asyncio.sleep(0.01)
    assert fake.keep_alives >= 2
    assert waits[0] == pytest.approx(10 * KEEP_ALIVE_FACTOR) == pytest.approx(8.0)
