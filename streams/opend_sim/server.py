"""Asyncio TCP server speaking the OpenD protocol, serving capital distribution and flow.

Wire-compatible with the official futu SDK (InitConnect, GetGlobalState, KeepAlive,
Qot_GetCapitalDistribution, Qot_GetCapitalFlow, Qot_GetUserSecurity from the account's
watchlist groups (``user_groups``); protobuf or JSON bodies; RSA + AES
encryption when started with an RSA key, like an OpenD configured with one) and with
our client. Both quote protocols answer from one market model, so a capital-flow row
equals the capital distribution of its minute. Each enforces its own OpenD quota
(30 per 30 s by default, never shared) with a sliding window (wall seconds) and
answers over-limit, unknown, unsupported and no-quote-right requests with error
replies in OpenD's words (Chinese and English), never silence. A bad frame (magic,
SHA1, oversize, undecryptable) closes only the offending connection; so do a peer
that stops mid-frame for ``frame_timeout`` seconds and one that sends no KeepAlive
for ``keep_alive_misses`` intervals. Connections that asked for notifications
(InitConnect recvNotify) get a Notify push when a market opens or closes.

In-process use (tests)::

    sim = OpenDSimulator(MarketModel(scenario, seed), SimClock(start, speed=0))
    await sim.start()            # port 0 -> a free port, see sim.port
    sim.clock.set(t)             # jump simulated time
    sim.counts[3212]             # requests per protoID, all connections (3211: flow)
    sim.security_counts[(3212, "HK.00700")]  # quote requests per protoID and security
    sim.user_groups["Tech"] = ["HK.00700"]   # the account's watchlist groups, live
    sim.error_replies[3212] = "..."  # answer every such request with this error text
    sim.connections[conn_id].counts
    sim.notifies                 # Notify pushes sent, all connections
    await sim.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf import json_format
from google.protobuf.message import Message

from streams.domain.capital_flow import PERIOD_INTRADAY
from streams.domain.market import SESSIONS, SecurityFormatError, from_wire, parse_security
from streams.opend import crypto, errors, framing
from streams.opend.capital_flow import capital_flow_to_s2c
from streams.opend_sim import calendar
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.pb.opend import Common_pb2 as common_pb
from streams.pb.opend import GetGlobalState_pb2 as global_state_pb
from streams.pb.opend import InitConnect_pb2 as init_pb
from streams.pb.opend import KeepAlive_pb2 as keepalive_pb
from streams.pb.opend import Notify_pb2 as notify_pb
from streams.pb.opend import Qot_Common_pb2 as qot_common_pb
from streams.pb.opend import Qot_GetCapitalDistribution_pb2 as capdist_pb
from streams.pb.opend import Qot_GetCapitalFlow_pb2 as capflow_pb
from streams.pb.opend import Qot_GetUserSecurity_pb2 as user_security_pb
from streams.timing.ratelimit import SlidingWindowLimiter

log = logging.getLogger(__name__)

SERVER_VER = 904  # reported as "9.04"
SERVER_BUILD = 4408
LOGIN_USER_ID = 10000001
RET_FAILED = common_pb.RetType_Failed
# Error texts in OpenD's manner: Chinese first, English after. Clients classify by
# these words (streams.opend.errors), never by the simulator's own errCodes.
RATE_LIMIT_MSG = (
    "获取资金分布频率太高, 请求频率限制为每{window:g}秒最多{limit}次 "
    "(request frequency too high: at most {limit} requests per {window:g} seconds)"
)
FLOW_RATE_LIMIT_MSG = (
    "获取资金流向频率太高, 请求频率限制为每{window:g}秒最多{limit}次 "
    "(capital flow request frequency too high: at most {limit} requests per {window:g} seconds)"
)
PERIOD_MSG = (
    "模拟器只提供当日分时资金流向 (periodType {period}): "
    "this simulator answers periodType INTRADAY (1) only"
)
UNKNOWN_MSG = "未知股票 {security} (unknown stock {security})"
UNSUPPORTED_MSG = "该品种不支持此功能: {security} (not supported for this security type)"
NO_RIGHT_MSG = "无权限获取{market}市场行情 (no quote right for the {market} market)"
UNKNOWN_GROUP_MSG = "自选股分组不存在: {group} (unknown watchlist group {group})"
LOT_SIZES = {"US": 1}  # shares per lot a group entry gives; 100 elsewhere
MARKET_PUSH_MSG = "{market} market {what}"

_REQUEST_TYPES: dict[int, tuple[type[Message], type[Message]]] = {
    framing.PROTO_INIT_CONNECT: (init_pb.Request, init_pb.Response),
    framing.PROTO_GET_GLOBAL_STATE: (global_state_pb.Request, global_state_pb.Response),
    framing.PROTO_KEEP_ALIVE: (keepalive_pb.Request, keepalive_pb.Response),
    framing.PROTO_QOT_GET_CAPITAL_DISTRIBUTION: (capdist_pb.Request, capdist_pb.Response),
    framing.PROTO_QOT_GET_CAPITAL_FLOW: (capflow_pb.Request, capflow_pb.Response),
    framing.PROTO_QOT_GET_USER_SECURITY: (user_security_pb.Request, user_security_pb.Response),
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
    recv_notify: bool = False
    push_fmt: int = framing.FMT_PROTOBUF
    encryption: str = "none"  # "none", "FtAesEcb" or "AesCbc"
    notifies: int = 0  # Notify pushes sent to this connection


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
        flow_rate_limit_requests: int = 30,
        flow_rate_limit_window: float = 30.0,
        keep_alive_interval: int = 10,
        keep_alive_misses: int = 3,
        frame_timeout: float = 10.0,
        max_body: int = framing.DEFAULT_MAX_BODY,
        wall: Any = time.monotonic,
        rsa_key: rsa.RSAPrivateKey | None = None,
        no_quote_right: frozenset[str] = frozenset(),
        market_watch_interval: float = 0.5,
        user_groups: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """``user_groups`` (name -> codes) add to and override the scenario's groups."""
        if rate_limit_scope not in ("account", "connection"):
            raise ValueError("rate_limit_scope must be 'account' or 'connection'")
        self.market = market or MarketModel()
        self.clock = clock or SimClock()
        self.host = host
        self.port = port
        self.rate_limit_requests = rate_limit_requests
        self.rate_limit_window = rate_limit_window
        self.rate_limit_scope = rate_limit_scope
        self.flow_rate_limit_requests = flow_rate_limit_requests
        self.flow_rate_limit_window = flow_rate_limit_window
        self.keep_alive_interval = keep_alive_interval
        # A connection silent (no KeepAlive) this long is closed, like OpenD does.
        self.keep_alive_misses = keep_alive_misses
        self.frame_timeout = frame_timeout  # a frame started must finish within this
        self.rsa_key = rsa_key
        self.no_quote_right = frozenset(m.upper() for m in no_quote_right)
        self.market_watch_interval = market_watch_interval
        self.notifies = 0
        self.max_body = max_body
        self._wall = wall
        # protoID -> (requests, window, over-limit text): one quota per protocol.
        self._quotas: dict[int, tuple[int, float, str]] = {
            framing.PROTO_QOT_GET_CAPITAL_DISTRIBUTION: (
                rate_limit_requests,
                rate_limit_window,
                RATE_LIMIT_MSG,
            ),
            framing.PROTO_QOT_GET_CAPITAL_FLOW: (
                flow_rate_limit_requests,
                flow_rate_limit_window,
                FLOW_RATE_LIMIT_MSG,
            ),
        }
        self._account_limiters = {
            proto_id: SlidingWindowLimiter(limit, window, wall)
            for proto_id, (limit, window, _text) in self._quotas.items()
        }
        self._conn_limiters: dict[tuple[int, int], SlidingWindowLimiter] = {}
        self.counts: Counter[int] = Counter()
        self.security_counts: Counter[tuple[int, str]] = Counter()
        scenario = self.market.scenario
        self.user_groups: dict[str, list[str]] = {
            name: list(codes) for name, codes in (scenario.user_groups if scenario else {}).items()
        }
        self.user_groups.update((name, list(codes)) for name, codes in (user_groups or {}).items())
        self.connections: dict[int, ConnectionStats] = {}
        self.frame_errors: list[str] = []
        self.silent_proto_ids: set[int] = set()  # never answered (client timeout tests)
        # protoID -> an error text every quote request of it is answered with (after its
        # quota, before the security is looked at): a gateway that is sick, not down.
        self.error_replies: dict[int, str] = {}
        # When set, simulated time stands still until the first quote request (capital
        # distribution or flow) and then runs at this speed: a demo's scenario starts
        # when polling does.
        self.speed_on_first_request: float | None = None
        self._conn_ids = itertools.count(1)
        self._push_serials = itertools.count(1)
        self._writers: dict[int, asyncio.StreamWriter] = {}
        self._sessions: dict[int, crypto.Session] = {}
        self._server: asyncio.Server | None = None
        self._watch: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._watch = asyncio.create_task(self._watch_markets(), name="opend-sim-markets")
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
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
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
        session = crypto.Session(key=self.rsa_key, rsa_in=self.rsa_key is not None)
        self._sessions[conn.conn_id] = session
        decoder = framing.FrameDecoder(self.max_body, decrypt=session.open)
        log.info("conn %d from %s opened", conn.conn_id, peer)
        reason = "client closed the connection"
        last_alive = last_data = time.monotonic()
        try:
            while True:
                alive_limit = self.keep_alive_interval * self.keep_alive_misses
                deadline = last_alive + alive_limit if alive_limit > 0 else None
                if decoder.buffered:
                    stall = last_data + self.frame_timeout
                    deadline = stall if deadline is None else min(deadline, stall)
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), wait)
                except TimeoutError:
                    now = time.monotonic()
                    if decoder.buffered and now - last_data >= self.frame_timeout:
                        reason = (
                            f"client stopped mid-frame ({decoder.buffered} bytes pending "
                            f"for {self.frame_timeout:g}s)"
                        )
                        break
                    if alive_limit > 0 and now - last_alive >= alive_limit:
                        reason = f"no KeepAlive for {alive_limit:g}s"
                        break
                    continue
                if not chunk:
                    if decoder.buffered:
                        reason = f"client closed mid-frame ({decoder.buffered} bytes pending)"
                    break
                last_data = time.monotonic()
                for frame in decoder.iter_feed(chunk):
                    if frame.proto_id in (framing.PROTO_INIT_CONNECT, framing.PROTO_KEEP_ALIVE):
                        last_alive = time.monotonic()
                    reply = self._dispatch(conn, frame)
                    if reply is not None:
                        writer.write(reply)
                await writer.drain()
        except framing.FrameError as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if self.rsa_key is not None and exc.proto_id == framing.PROTO_INIT_CONNECT:
                reason += " (InitConnect not encrypted with this simulator's RSA key?)"
            self.frame_errors.append(reason)
            log.error("conn %d from %s: bad frame, closing: %s", conn.conn_id, peer, reason)
        except (ConnectionError, OSError) as exc:
            reason = f"connection error: {exc}"
        finally:
            conn.closed = True
            conn.close_reason = reason
            self._writers.pop(conn.conn_id, None)
            self._sessions.pop(conn.conn_id, None)
            for proto_id in self._quotas:
                self._conn_limiters.pop((conn.conn_id, proto_id), None)
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
            return self._encode(frame, body, self._sessions.get(conn.conn_id))
        request_type, response_type = types
        response = response_type()
        session = self._sessions.get(conn.conn_id)
        cipher: crypto.PacketCipher | None = None
        try:
            request = self._decode(frame, request_type)
            cipher = self._handle_request(conn, frame.proto_id, request, response)
            response.retType = common_pb.RetType_Succeed  # type: ignore[attr-defined]
        except _Reply as err:
            conn.errors[str(err.err_code)] += 1
            response = response_type(retType=err.ret_type, retMsg=err.msg, errCode=err.err_code)
        data = self._encode(frame, response, session)
        if cipher is not None and session is not None:
            # The InitConnect reply went out under RSA; everything after it under AES.
            session.cipher = cipher
            conn.encryption = type(cipher).__name__
        return data

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
    def _encode(
        frame: framing.Frame, response: Message, session: crypto.Session | None = None
    ) -> bytes:
        if frame.fmt == framing.FMT_JSON:
            body = json_format.MessageToJson(response).encode("utf-8")
        else:
            body = response.SerializeToString()
        seal = session.seal if session is not None else None
        return framing.encode_frame(frame.proto_id, frame.serial, body, frame.fmt, encrypt=seal)

    # -- handlers -------------------------------------------------------------------

    def _handle_request(
        self, conn: ConnectionStats, proto_id: int, request: Any, response: Any
    ) -> crypto.PacketCipher | None:
        """Fill ``response``; returns the AES cipher an InitConnect just negotiated."""
        if proto_id == framing.PROTO_INIT_CONNECT:
            return self._init_connect(conn, request.c2s, response.s2c)
        if not conn.initialized:
            raise _Reply(errors.ERR_BAD_REQUEST, "InitConnect must be the first request")
        if proto_id == framing.PROTO_KEEP_ALIVE:
            response.s2c.time = int(time.time())
        elif proto_id == framing.PROTO_GET_GLOBAL_STATE:
            self._global_state(conn, response.s2c)
        elif proto_id == framing.PROTO_QOT_GET_CAPITAL_DISTRIBUTION:
            self._capital_distribution(conn, request, response.s2c)
        elif proto_id == framing.PROTO_QOT_GET_CAPITAL_FLOW:
            self._capital_flow(conn, request, response.s2c)
        elif proto_id == framing.PROTO_QOT_GET_USER_SECURITY:
            self._user_security(request.c2s.groupName, response.s2c)
        return None

    def _init_connect(
        self, conn: ConnectionStats, c2s: Any, s2c: Any
    ) -> crypto.PacketCipher | None:
        conn.initialized = True
        conn.client_id = c2s.clientID
        conn.recv_notify = bool(c2s.recvNotify)
        if c2s.HasField("pushProtoFmt"):
            conn.push_fmt = c2s.pushProtoFmt
        s2c.serverVer = SERVER_VER
        s2c.loginUserID = LOGIN_USER_ID
        s2c.connID = conn.conn_id
        s2c.keepAliveInterval = self.keep_alive_interval
        s2c.userAttribution = 1
        s2c.connAESKey = crypto.random_key()
        # Like OpenD: without an RSA key nothing is encrypted; with one, the algorithm
        # the client names (FTAES_ECB when it names none), unless it asks for None.
        algo = c2s.packetEncAlgo if c2s.HasField("packetEncAlgo") else crypto.ENC_FTAES_ECB
        session = self._sessions.get(conn.conn_id)
        if self.rsa_key is None or session is None or algo == crypto.ENC_NONE:
            return None
        iv: str | None = None
        if algo == crypto.ENC_AES_CBC:
            iv = crypto.random_key()
            s2c.aesCBCiv = iv
        session.rsa_out = True
        return crypto.make_cipher(algo, s2c.connAESKey, iv)

    def _limiter(self, conn: ConnectionStats, proto_id: int) -> SlidingWindowLimiter:
        if self.rate_limit_scope == "account":
            return self._account_limiters[proto_id]
        key = (conn.conn_id, proto_id)
        limiter = self._conn_limiters.get(key)
        if limiter is None:
            limit, window, _text = self._quotas[proto_id]
            limiter = SlidingWindowLimiter(limit, window, self._wall)
            self._conn_limiters[key] = limiter
        return limiter

    def _quote_request(self, conn: ConnectionStats, proto_id: int, request: Any) -> str:
        """The common part of a quote request: the clock, the protocol's own quota, then
        the security (unknown, unsupported, no quote right). Returns "MARKET.CODE"."""
        if self.speed_on_first_request is not None:
            self.clock.set(self.clock.now(), speed=self.speed_on_first_request)
            self.speed_on_first_request = None
        sec = request.c2s.security
        try:
            security: str | None = from_wire(sec.market, sec.code)
        except SecurityFormatError:
            security = None  # no market of that number, or not a code
        name = security or f"{sec.market}.{sec.code}"
        self.security_counts[(proto_id, name)] += 1
        if not self._limiter(conn, proto_id).try_acquire():
            limit, window, text = self._quotas[proto_id]
            raise _Reply(errors.ERR_RATE_LIMIT, text.format(limit=limit, window=window))
        if proto_id in self.error_replies:
            raise _Reply(errors.ERR_BAD_REQUEST, self.error_replies[proto_id])
        if security is None:
            raise _Reply(errors.ERR_UNKNOWN_SECURITY, UNKNOWN_MSG.format(security=name))
        status = self.market.availability(security)
        if status.status == "unknown":
            raise _Reply(errors.ERR_UNKNOWN_SECURITY, UNKNOWN_MSG.format(security=security))
        if status.status == "unsupported":
            raise _Reply(errors.ERR_UNSUPPORTED_SECURITY, UNSUPPORTED_MSG.format(security=security))
        market = security.split(".", 1)[0]
        if market in self.no_quote_right:
            raise _Reply(errors.ERR_NO_QUOTE_RIGHT, NO_RIGHT_MSG.format(market=market))
        return security

    def _capital_distribution(self, conn: ConnectionStats, request: Any, s2c: Any) -> None:
        security = self._quote_request(conn, framing.PROTO_QOT_GET_CAPITAL_DISTRIBUTION, request)
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

    def _capital_flow(self, conn: ConnectionStats, request: Any, s2c: Any) -> None:
        security = self._quote_request(conn, framing.PROTO_QOT_GET_CAPITAL_FLOW, request)
        c2s = request.c2s
        period = c2s.periodType if c2s.HasField("periodType") else PERIOD_INTRADAY
        if period != PERIOD_INTRADAY:
            raise _Reply(errors.ERR_BAD_REQUEST, PERIOD_MSG.format(period=period))
        capital_flow_to_s2c(self.market.capital_flow(security, self.clock.now()), s2c)

    def _user_security(self, group: str, s2c: Any) -> None:
        """One watchlist group, each entry with the static fields OpenD always sends."""
        codes = self.user_groups.get(group)
        if codes is None:
            raise _Reply(errors.ERR_UNKNOWN_GROUP, UNKNOWN_GROUP_MSG.format(group=group))
        for code in codes:
            sec = parse_security(code)
            basic = s2c.staticInfoList.add().basic
            basic.security.market = sec.qot_market
            basic.security.code = sec.code
            digest = hashlib.blake2b(str(sec).encode(), digest_size=6).digest()
            basic.id = int.from_bytes(digest, "big")
            basic.lotSize = LOT_SIZES.get(sec.market, 100)
            unsupported = self.market.availability(str(sec)).status == "unsupported"
            basic.secType = (
                qot_common_pb.SecurityType_Index if unsupported else qot_common_pb.SecurityType_Eqty
            )
            basic.name = str(sec)
            basic.listTime = ""
            basic.delisting = False

    def _global_state(self, conn: ConnectionStats, s2c: Any) -> None:
        now = self.clock.now()
        states = {m: self.market.calendar.state(m, now) for m in SESSIONS}
        s2c.marketHK = states["HK"]
        s2c.marketUS = states["US"]
        s2c.marketSH = states["SH"]
        s2c.marketSZ = states["SZ"]
        s2c.marketHKFuture = calendar.STATE_CLOSED
        s2c.qotLogined = True
        s2c.trdLogined = False
        s2c.serverVer = SERVER_VER
        s2c.serverBuildNo = SERVER_BUILD
        s2c.time = int(now)
        s2c.localTime = now
        s2c.programStatus.type = common_pb.ProgramStatusType_Ready
        s2c.connID = conn.conn_id

    # -- pushes ---------------------------------------------------------------------

    def push_notify(self, desc: str, conn_id: int | None = None, serial: int | None = None) -> int:
        """Push a Notify (a GtwEvent carrying ``desc``) to connections that asked for them.

        ``conn_id`` limits it to one connection (even one that did not ask, for tests);
        ``serial`` forces the header's serialNo. Returns how many connections got it.
        """
        note = notify_pb.Response(retType=common_pb.RetType_Succeed)
        note.s2c.type = notify_pb.NotifyType_GtwEvent
        note.s2c.event.eventType = 0  # GtwEventType_None: an informational event
        note.s2c.event.desc = desc
        sent = 0
        for cid, writer in list(self._writers.items()):
            conn = self.connections[cid]
            wanted = cid == conn_id if conn_id is not None else conn.recv_notify
            if not wanted or not conn.initialized or writer.is_closing():
                continue
            if conn.push_fmt == framing.FMT_JSON:
                body = json_format.MessageToJson(note).encode("utf-8")
            else:
                body = note.SerializeToString()
            session = self._sessions.get(cid)
            writer.write(
                framing.encode_frame(
                    framing.PROTO_NOTIFY,
                    next(self._push_serials) if serial is None else serial,
                    body,
                    conn.push_fmt,
                    encrypt=session.seal if session is not None else None,
                )
            )
            conn.notifies += 1
            sent += 1
        self.notifies += sent
        return sent

    async def _watch_markets(self) -> None:
        """Push a Notify when a market opens or closes in simulated time."""
        cal = self.market.calendar
        was = {m: cal.is_open(m, self.clock.now()) for m in SESSIONS}
        while True:
            await asyncio.sleep(self.market_watch_interval)
            now = self.clock.now()
            for market in SESSIONS:
                is_open = cal.is_open(market, now)
                if is_open != was[market]:
                    was[market] = is_open
                    what = "open" if is_open else "closed"
                    sent = self.push_notify(MARKET_PUSH_MSG.format(market=market, what=what))
                    log.info("%s market %s: Notify pushed to %d connections", market, what, sent)
