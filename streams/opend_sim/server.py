"""Asyncio TCP server speaking the OpenD protocol, serving capital distribution.

Wire-compatible with the official futu SDK (InitConnect, GetGlobalState, KeepAlive,
Qot_GetCapitalDistribution; protobuf or JSON bodies, no encryption) and with our
client. It enforces OpenD's 30-per-30-s quota with a sliding window (wall seconds)
and answers over-limit, unknown and unsupported requests with error replies, never
silence. A bad frame (magic, SHA1, oversize) closes only the offending connection.

In-process use (tests)::

    sim = OpenDSimulator(MarketModel(scenario, seed), SimClock(start, speed=0))
    await sim.start()            # port 0 -> a free port, see sim.port
    sim.clock.set(t)             # jump simulated time
    sim.counts[3212]             # requests per protoID, all connections
    sim.connections[conn_id].counts
    await sim.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from streams.opend import errors, framing
from streams.opend.hours import SESSIONS, trading_sessions
from streams.opend.security import SecurityFormatError, from_wire
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.pb.opend import Common_pb2 as common_pb
from streams.pb.opend import GetGlobalState_pb2 as global_state_pb
from streams.pb.opend import InitConnect_pb2 as init_pb
from streams.pb.opend import KeepAlive_pb2 as keepalive_pb
from streams.pb.opend import Qot_GetCapitalDistribution_pb2 as capdist_pb
from streams.ratelimit import SlidingWindowLimiter

log = logging.getLogger(__name__)

SERVER_VER = 904  # reported as "9.04"
SERVER_BUILD = 4408
LOGIN_USER_ID = 10000001
RET_FAILED = common_pb.RetType_Failed
RATE_LIMIT_MSG = (
    "获取资金分布频率太高, 请求频率限制为每{window:g}秒最多{limit}次 "
    "(request frequency too high: at most {limit} requests per {window:g} seconds)"
)

# Qot_Common.QotMarketState values used by GetGlobalState.
_STATE_MORNING, _STATE_REST, _STATE_AFTERNOON, _STATE_CLOSED, _STATE_WAITING = 3, 4, 5, 6, 2

_REQUEST_TYPES: dict[int, tuple[type[Message], type[Message]]] = {
    framing.PROTO_INIT_CONNECT: (init_pb.Request, init_pb.Response),
    framing.PROTO_GET_GLOBAL_STATE: (global_state_pb.Request, global_state_pb.Response),
    framing.PROTO_KEEP_ALIVE: (keepalive_pb.Request, keepalive_pb.Response),
    framing.PROTO_QOT_GET_CAPITAL_DISTRIBUTION: (capdist_pb.Request, capdist_pb.Response),
}


class _Reply(Exception):
    """Raised inside a handler to answer with an error reply."""

    def __init__(self, err_code: int, msg: str, ret_type: int = RET_FAILED) -> None:
        super().__init__(msg)
        self.err_code = err_code
        self.msg = msg
        self.ret_type = ret_type


@dataclass
class ConnectionStats:
    """One client connection, kept after it closes so tests can inspect it."""

    conn_id: int
    peer: str
    counts: Counter[int] = field(default_factory=Counter)
    client_id: str = ""
    initialized: bool = False
    closed: bool = False
    close_reason: str = ""
    errors: Counter[str] = field(default_factory=Counter)


class OpenDSimulator:
    """The simulator server. ``port=0`` picks a free port (read ``.port`` after start)."""

    def __init__(
        self,
        market: MarketModel | None = None,
        clock: SimClock | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit_requests: int = 30,
        rate_limit_window: float = 30.0,
        rate_limit_scope: str = "account",
        keep_alive_interval: int = 10,
        max_body: int = framing.DEFAULT_MAX_BODY,
        wall: Any = time.monotonic,
    ) -> None:
        if rate_limit_scope not in ("account", "connection"):
            raise ValueError("rate_limit_scope must be 'account' or 'connection'")
        self.market = market or MarketModel()
        self.clock = clock or SimClock()
        self.host = host
        self.port = port
        self.rate_limit_requests = rate_limit_requests
        self.rate_limit_window = rate_limit_window
        self.rate_limit_scope = rate_limit_scope
        self.keep_alive_interval = keep_alive_interval
        self.max_body = max_body
        self._wall = wall
        self._account_limiter = SlidingWindowLimiter(rate_limit_requests, rate_limit_window, wall)
        self._conn_limiters: dict[int, SlidingWindowLimiter] = {}
        self.counts: Counter[int] = Counter()
        self.connections: dict[int, ConnectionStats] = {}
        self.frame_errors: list[str] = []
        self.silent_proto_ids: set[int] = set()  # never answered (client timeout tests)
        # When set, simulated time stands still until the first capital distribution
        # request and then runs at this speed: a demo's scenario starts when polling does.
        self.speed_on_first_request: float | None = None
        self._conn_ids = itertools.count(1)
        self._writers: dict[int, asyncio.StreamWriter] = {}
        self._server: asyncio.Server | None = None

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("OpenD simulator listening on %s:%s", self.host, self.port)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        await self.disconnect_all()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def disconnect_all(self) -> None:
        """Drop every client connection (server-side close)."""
        writers = list(self._writers.values())
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def __aenter__(self) -> OpenDSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def active_connections(self) -> int:
        return len(self._writers)

    # -- connection -----------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        conn = ConnectionStats(next(self._conn_ids), peer)
        self.connections[conn.conn_id] = conn
        self._writers[conn.conn_id] = writer
        decoder = framing.FrameDecoder(self.max_body)
        log.info("conn %d from %s opened", conn.conn_id, peer)
        reason = "client closed the connection"
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    if decoder.buffered:
                        reason = f"client closed mid-frame ({decoder.buffered} bytes pending)"
                    break
                for frame in decoder.feed(chunk):
                    reply = self._dispatch(conn, frame)
                    if reply is not None:
                        writer.write(reply)
                await writer.drain()
        except framing.FrameError as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self.frame_errors.append(reason)
            log.error("conn %d from %s: bad frame, closing: %s", conn.conn_id, peer, reason)
        except (ConnectionError, OSError) as exc:
            reason = f"connection error: {exc}"
        finally:
            conn.closed = True
            conn.close_reason = reason
            self._writers.pop(conn.conn_id, None)
            self._conn_limiters.pop(conn.conn_id, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            log.info(
                "conn %d from %s closed (%s); requests %s",
                conn.conn_id,
                peer,
                reason,
                dict(conn.counts),
            )

    def _dispatch(self, conn: ConnectionStats, frame: framing.Frame) -> bytes | None:
        self.counts[frame.proto_id] += 1
        conn.counts[frame.proto_id] += 1
        log.debug("conn %d: protoID %d serialNo %d", conn.conn_id, frame.proto_id, frame.serial)
        if frame.proto_id in self.silent_proto_ids:
            return None
        types = _REQUEST_TYPES.get(frame.proto_id)
        if types is None:
            # Unknown protocol: a generic failure reply (empty body fields are optional).
            body = init_pb.Response(
                retType=RET_FAILED,
                retMsg=f"unsupported protoID {frame.proto_id}",
                errCode=errors.ERR_BAD_REQUEST,
            )
            return self._encode(frame, body)
        request_type, response_type = types
        response = response_type()
        try:
            request = self._decode(frame, request_type)
            self._handle_request(conn, frame.proto_id, request, response)
            response.retType = common_pb.RetType_Succeed  # type: ignore[attr-defined]
        except _Reply as err:
            conn.errors[str(err.err_code)] += 1
            response = response_type(retType=err.ret_type, retMsg=err.msg, errCode=err.err_code)
        return self._encode(frame, response)

    @staticmethod
    def _decode(frame: framing.Frame, request_type: type[Message]) -> Message:
        request = request_type()
        try:
            if frame.fmt == framing.FMT_JSON:
                json_format.Parse(frame.body.decode("utf-8"), request)
                if not request.IsInitialized():
                    raise ValueError("missing required fields")
            elif frame.fmt == framing.FMT_PROTOBUF:
                request.ParseFromString(frame.body)
            else:
                raise ValueError(f"unknown protoFmtType {frame.fmt}")
        except Exception as exc:
            raise _Reply(errors.ERR_BAD_REQUEST, f"invalid request body: {exc}") from exc
        return request

    @staticmethod
    def _encode(frame: framing.Frame, response: Message) -> bytes:
        if frame.fmt == framing.FMT_JSON:
            body = json_format.MessageToJson(response).encode("utf-8")
        else:
            body = response.SerializeToString()
        return framing.encode_frame(frame.proto_id, frame.serial, body, frame.fmt)

    # -- handlers -------------------------------------------------------------------

    def _handle_request(
        self, conn: ConnectionStats, proto_id: int, request: Any, response: Any
    ) -> None:
        if proto_id == framing.PROTO_INIT_CONNECT:
            conn.initialized = True
            conn.client_id = request.c2s.clientID
            s2c = response.s2c
            s2c.serverVer = SERVER_VER
            s2c.loginUserID = LOGIN_USER_ID
            s2c.connID = conn.conn_id
            s2c.connAESKey = "0" * 16  # encryption is never enabled
            s2c.keepAliveInterval = self.keep_alive_interval
            s2c.userAttribution = 1
            return
        if not conn.initialized:
            raise _Reply(errors.ERR_BAD_REQUEST, "InitConnect must be the first request")
        if proto_id == framing.PROTO_KEEP_ALIVE:
            response.s2c.time = int(time.time())
        elif proto_id == framing.PROTO_GET_GLOBAL_STATE:
            self._global_state(conn, response.s2c)
        elif proto_id == framing.PROTO_QOT_GET_CAPITAL_DISTRIBUTION:
            self._capital_distribution(conn, request, response.s2c)

    def _limiter(self, conn: ConnectionStats) -> SlidingWindowLimiter:
        if self.rate_limit_scope == "account":
            return self._account_limiter
        limiter = self._conn_limiters.get(conn.conn_id)
        if limiter is None:
            limiter = SlidingWindowLimiter(
                self.rate_limit_requests, self.rate_limit_window, self._wall
            )
            self._conn_limiters[conn.conn_id] = limiter
        return limiter

    def _capital_distribution(self, conn: ConnectionStats, request: Any, s2c: Any) -> None:
        if self.speed_on_first_request is not None:
            self.clock.set(self.clock.now(), speed=self.speed_on_first_request)
            self.speed_on_first_request = None
        if not self._limiter(conn).try_acquire():
            msg = RATE_LIMIT_MSG.format(
                limit=self.rate_limit_requests, window=self.rate_limit_window
            )
            raise _Reply(errors.ERR_RATE_LIMIT, msg)
        sec = request.c2s.security
        try:
            security = from_wire(sec.market, sec.code)
        except SecurityFormatError as exc:
            raise _Reply(errors.ERR_UNKNOWN_SECURITY, f"unknown stock: {exc}") from exc
        status = self.market.availability(security)
        if status.status == "unknown":
            raise _Reply(errors.ERR_UNKNOWN_SECURITY, f"unknown stock {security}: {status.reason}")
        if status.status == "unsupported":
            raise _Reply(
                errors.ERR_UNSUPPORTED_SECURITY, f"not supported for {security}: {status.reason}"
            )
        dist = self.market.distribution(security, self.clock.now())
        s2c.capitalInSuper = dist.capital_in_super
        s2c.capitalInBig = dist.capital_in_big
        s2c.capitalInMid = dist.capital_in_mid
        s2c.capitalInSmall = dist.capital_in_small
        s2c.capitalOutSuper = dist.capital_out_super
        s2c.capitalOutBig = dist.capital_out_big
        s2c.capitalOutMid = dist.capital_out_mid
        s2c.capitalOutSmall = dist.capital_out_small
        s2c.updateTime = dist.update_time
        s2c.updateTimestamp = dist.update_timestamp

    def _market_state(self, market: str, t: float) -> int:
        _day, sessions = trading_sessions(market, t)
        if not sessions or t >= sessions[-1][1]:
            return _STATE_CLOSED
        if t < sessions[0][0]:
            return _STATE_WAITING
        for i, (open_, close) in enumerate(sessions):
            if open_ <= t < close:
                return _STATE_MORNING if i == 0 and len(sessions) > 1 else _STATE_AFTERNOON
        return _STATE_REST

    def _global_state(self, conn: ConnectionStats, s2c: Any) -> None:
        now = self.clock.now()
        states = {m: self._market_state(m, now) for m in SESSIONS}
        s2c.marketHK = states["HK"]
        s2c.marketUS = states["US"]
        s2c.marketSH = states["SH"]
        s2c.marketSZ = states["SZ"]
        s2c.marketHKFuture = _STATE_CLOSED
        s2c.qotLogined = True
        s2c.trdLogined = False
        s2c.serverVer = SERVER_VER
        s2c.serverBuildNo = SERVER_BUILD
        s2c.time = int(now)
        s2c.localTime = now
        s2c.programStatus.type = common_pb.ProgramStatusType_Ready
        s2c.connID = conn.conn_id
