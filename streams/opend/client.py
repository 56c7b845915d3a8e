"""Asyncio OpenD client: one TCP connection, requests matched to replies by serialNo.

Why our own client instead of the futu SDK: the SDK is thread-based and blocking, and
registers the same protobuf symbols as ours. This client is small: InitConnect on
connect, KeepAlive at the interval the server asks for, a future per pending
serialNo, a timeout per request, and reconnect with exponential backoff through
:meth:`OpenDClient.ensure_connected`. Closing (or losing) the connection fails every
pending request with :class:`ConnectionLost`, so no caller waits forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from streams.opend import framing
from streams.opend.errors import ConnectionLost, OpenDError, RequestTimeout, classify
from streams.opend.security import to_wire
from streams.opend.snapshot import CapitalDistribution
from streams.pb.opend import GetGlobalState_pb2 as global_state_pb
from streams.pb.opend import InitConnect_pb2 as init_pb
from streams.pb.opend import KeepAlive_pb2 as keepalive_pb
from streams.pb.opend import Qot_GetCapitalDistribution_pb2 as capdist_pb

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Message)

CLIENT_VER = 100  # "1.00" in OpenD's clientVer encoding (major * 100 + minor)
PACKET_ENC_NONE = -1  # Common.PacketEncAlgo_None: we never encrypt


class OpenDClient:
    """One connection to OpenD (or the simulator). Not thread-safe; one event loop."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 11111,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        client_id: str | None = None,
        max_body: int = framing.DEFAULT_MAX_BODY,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.client_id = client_id or f"capflow-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.max_body = max_body
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[framing.Frame]] = {}
        self._serials = itertools.count(random.randint(1, 1 << 20))
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = False
        self._connect_lock = asyncio.Lock()
        self.conn_id = 0
        self.server_ver = 0
        self.keep_alive_interval = 0.0
        self.connects = 0  # successful InitConnects, for tests and metrics

    @property
    def source(self) -> str:
        """Where snapshots come from, e.g. "opend://127.0.0.1:11111"."""
        return f"opend://{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._ready and self._writer is not None and not self._writer.is_closing()

    async def __aenter__(self) -> OpenDClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- connection ---------------------------------------------------------------

    async def connect(self) -> None:
        """Open the socket and InitConnect once; raises OSError/OpenDError on failure."""
        async with self._connect_lock:
            if self.connected:
                return
            await self._drop("reconnecting")
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.connect_timeout
            )
            self._tasks = [asyncio.create_task(self._read_loop(), name="opend-read")]
            try:
                reply = await self._call(
                    framing.PROTO_INIT_CONNECT,
                    init_pb.Request(
                        c2s=init_pb.C2S(
                            clientVer=CLIENT_VER,
                            clientID=self.client_id,
                            recvNotify=False,
                            packetEncAlgo=PACKET_ENC_NONE,
                            pushProtoFmt=framing.FMT_PROTOBUF,
                            programmingLanguage="Python",
                        )
                    ),
                    init_pb.Response,
                    self.connect_timeout,
                )
            except BaseException:
                await self._drop("InitConnect failed")
                raise
            self.conn_id = reply.s2c.connID
            self.server_ver = reply.s2c.serverVer
            self.keep_alive_interval = float(reply.s2c.keepAliveInterval)
            self._ready = True
            self.connects += 1
            if self.keep_alive_interval > 0:
                self._tasks.append(asyncio.create_task(self._keep_alive_loop(), name="opend-ka"))
            log.info(
                "connected to %s (connID=%s, keepAlive=%ss)",
                self.source,
                self.conn_id,
                self.keep_alive_interval,
            )

    async def ensure_connected(self, max_attempts: int | None = None) -> None:
        """Connect if needed, retrying with exponential backoff (forever if max_attempts None)."""
        delay = self.backoff_initial
        for attempt in itertools.count(1):
            if self.connected:
                return
            try:
                await self.connect()
                return
            except (OSError, TimeoutError, OpenDError, ConnectionLost) as exc:
                if max_attempts is not None and attempt >= max_attempts:
                    raise ConnectionLost(
                        f"cannot connect to {self.source} after {attempt} attempts: {exc}"
                    ) from exc
                wait = delay * (0.8 + 0.4 * random.random())
                log.warning("connect to %s failed (%s); retrying in %.1fs", self.source, exc, wait)
                await self._sleep(wait)
                delay = min(delay * 2, self.backoff_max)

    async def close(self) -> None:
        """Close the connection; pending requests fail with ConnectionLost."""
        await self._drop("client closed")

    async def _drop(self, reason: str) -> None:
        self._ready = False
        writer, self._writer, self._reader = self._writer, None, None
        self._fail_pending(ConnectionLost(f"{self.source}: {reason}"))
        current = asyncio.current_task()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            if task is not current:
                task.cancel()
        for task in tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)

    # -- background tasks ---------------------------------------------------------

    async def _read_loop(self) -> None:
        reader = self._reader
        assert reader is not None
        decoder = framing.FrameDecoder(self.max_body)
        reason = "connection closed by peer"
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                for frame in decoder.feed(chunk):
                    fut = self._pending.pop(frame.serial, None)
                    if fut is None:
                        log.debug(
                            "dropping unmatched reply protoID=%s serialNo=%s",
                            frame.proto_id,
                            frame.serial,
                        )
                    elif not fut.done():
                        fut.set_result(frame)
        except framing.FrameError as exc:
            reason = f"bad frame from server: {exc}"
            log.error("%s: %s", self.source, reason)
        except (OSError, asyncio.IncompleteReadError) as exc:
            reason = f"connection error: {exc}"
        self._ready = False
        self._fail_pending(ConnectionLost(f"{self.source}: {reason}"))
        if self._writer is not None:
            self._writer.close()

    async def _keep_alive_loop(self) -> None:
        while self.connected:
            await asyncio.sleep(self.keep_alive_interval)
            try:
                await self.keep_alive()
            except (RequestTimeout, ConnectionLost, OpenDError) as exc:
                log.warning("KeepAlive to %s failed: %s; dropping connection", self.source, exc)
                self._ready = False
                self._fail_pending(ConnectionLost(f"{self.source}: KeepAlive failed: {exc}"))
                if self._writer is not None:
                    self._writer.close()
                return

    # -- requests -----------------------------------------------------------------

    def _next_serial(self) -> int:
        return next(self._serials) & 0xFFFFFFFF or next(self._serials)

    async def _call(
        self, proto_id: int, request: Message, response_type: type[R], timeout: float | None
    ) -> R:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise ConnectionLost(f"{self.source}: not connected")
        serial = self._next_serial()
        fut: asyncio.Future[framing.Frame] = asyncio.get_running_loop().create_future()
        self._pending[serial] = fut
        wait = self.timeout if timeout is None else timeout
        try:
            writer.write(framing.encode_frame(proto_id, serial, request.SerializeToString()))
            await writer.drain()
            frame = await asyncio.wait_for(fut, wait)
        except TimeoutError:
            raise RequestTimeout(proto_id, serial, wait) from None
        except (OSError, RuntimeError) as exc:
            raise ConnectionLost(f"{self.source}: send failed: {exc}") from exc
        finally:
            self._pending.pop(serial, None)
        reply = response_type()
        try:
            reply.ParseFromString(frame.body)
        except DecodeError as exc:
            raise OpenDError(-500, 0, f"undecodable reply: {exc}", proto_id) from exc
        ret_type = getattr(reply, "retType", 0)
        if ret_type != 0:
            raise classify(
                ret_type, getattr(reply, "errCode", 0), getattr(reply, "retMsg", ""), proto_id
            )
        return reply

    async def request(
        self, proto_id: int, request: Message, response_type: type[R], timeout: float | None = None
    ) -> R:
        """Send one request and return its decoded, successful reply (after InitConnect)."""
        if not self.connected:
            raise ConnectionLost(f"{self.source}: not connected")
        return await self._call(proto_id, request, response_type, timeout)

    async def keep_alive(self) -> int:
        """One KeepAlive round trip; returns the server's time (epoch s)."""
        reply = await self.request(
            framing.PROTO_KEEP_ALIVE,
            keepalive_pb.Request(c2s=keepalive_pb.C2S(time=int(time.time()))),
            keepalive_pb.Response,
        )
        return reply.s2c.time

    async def get_global_state(self) -> global_state_pb.S2C:
        """Market states and login flags."""
        reply = await self.request(
            framing.PROTO_GET_GLOBAL_STATE,
            global_state_pb.Request(c2s=global_state_pb.C2S(userID=0)),
            global_state_pb.Response,
        )
        return reply.s2c

    async def get_capital_distribution(
        self, security: str, timeout: float | None = None
    ) -> CapitalDistribution:
        """Cumulative capital distribution of one security, e.g. "HK.00700"."""
        market, code = to_wire(security)
        req = capdist_pb.Request()
        req.c2s.security.market = market
        req.c2s.security.code = code
        reply = await self.request(
            framing.PROTO_QOT_GET_CAPITAL_DISTRIBUTION, req, capdist_pb.Response, timeout
        )
        return CapitalDistribution.from_s2c(market, code, reply.s2c)
