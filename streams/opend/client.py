"""Asyncio OpenD client: one TCP connection, replies matched on (protoID, serialNo).

Why our own client instead of the futu SDK: the SDK is thread-based and blocking, and
registers the same protobuf symbols as ours. This client does what the SDK does
(``open_context_base``): InitConnect on connect with the fields the SDK fills,
KeepAlive at 4/5 of the interval the server asks for, a future per pending
(protoID, serialNo), pushes (Notify and the Qot/Trd push protoIDs) routed to a push
handler and never taken as a reply, a timeout per request (InitConnect included),
optional RSA/AES encryption (``streams.opend.crypto``), and reconnect with
exponential backoff through :meth:`OpenDClient.ensure_connected`. Closing (or
losing) the connection fails every pending request with :class:`ConnectionLost`,
so no caller waits forever.
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
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf.message import DecodeError, Message

from streams.domain.capital_flow import PERIOD_INTRADAY, CapitalFlow
from streams.domain.market import SecurityFormatError, from_wire, to_wire
from streams.observability.metrics import OPEND_PUSHES
from streams.opend import crypto, framing
from streams.opend.capital_flow import capital_flow_from_s2c
from streams.opend.errors import ConnectionLost, OpenDError, RequestTimeout, classify
from streams.opend.snapshot import CapitalDistribution
from streams.pb.opend import GetGlobalState_pb2 as global_state_pb
from streams.pb.opend import InitConnect_pb2 as init_pb
from streams.pb.opend import KeepAlive_pb2 as keepalive_pb
from streams.pb.opend import Notify_pb2 as notify_pb
from streams.pb.opend import Qot_GetCapitalDistribution_pb2 as capdist_pb
from streams.pb.opend import Qot_GetCapitalFlow_pb2 as capflow_pb
from streams.pb.opend import Qot_GetUserSecurity_pb2 as user_security_pb
from streams.timing.backoff import Backoff

if TYPE_CHECKING:
    from streams.settings import OpenDSettings

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Message)

CLIENT_VER = 100  # "1.00" in OpenD's clientVer encoding (major * 100 + minor)
PACKET_ENC_NONE = crypto.ENC_NONE
KEEP_ALIVE_FACTOR = 0.8  # the SDK sends KeepAlive at 4/5 of the server's interval

PushHandler = Callable[[framing.Frame], None]


def describe_push(frame: framing.Frame) -> str:
    """A one-line description of a push for logs (Notify decoded, others by protoID)."""
    if frame.proto_id != framing.PROTO_NOTIFY or frame.fmt != framing.FMT_PROTOBUF:
        return f"push protoID={frame.proto_id} ({len(frame.body)} bytes)"
    note = notify_pb.Response()
    try:
        note.ParseFromString(frame.body)
    except DecodeError:
        return f"undecodable Notify ({len(frame.body)} bytes)"
    s2c = note.s2c
    detail = ""
    if s2c.HasField("event"):
        detail = f" event={s2c.event.eventType} {s2c.event.desc!r}"
    elif s2c.HasField("programStatus"):
        detail = f" programStatus={s2c.programStatus.programStatus.type}"
    elif s2c.HasField("connectStatus"):
        detail = (
            f" qotLogined={s2c.connectStatus.qotLogined} trdLogined={s2c.connectStatus.trdLogined}"
        )
    return f"Notify type={s2c.type}{detail}"


class OpenDClient:
    """One connection to OpenD (or the simulator). Not thread-safe; one event loop.

    ``timeout`` bounds every reply, InitConnect's included (``connect_timeout``
    overrides it for connecting); ``sleep`` paces reconnect backoff and KeepAlive;
    ``recv_notify`` asks OpenD for Notify pushes, which go to ``on_push`` (logged
    when None); ``rsa_key`` turns on encryption with ``packet_enc_algo``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 11111,
        *,
        timeout: float = 10.0,
        connect_timeout: float | None = None,
        client_id: str | None = None,
        max_body: int = framing.DEFAULT_MAX_BODY,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        recv_notify: bool = True,
        rsa_key: rsa.RSAPrivateKey | None = None,
        packet_enc_algo: int = crypto.ENC_AES_CBC,
        on_push: PushHandler | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        # TCP connect and InitConnect both wait at most this long (the reply timeout
        # unless told otherwise).
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self.client_id = client_id or f"capflow-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.max_body = max_body
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._sleep = sleep
        self.recv_notify = recv_notify
        self.rsa_key = rsa_key
        # With a key, encrypt like the SDK (AES_CBC unless told otherwise); else never.
        self.packet_enc_algo = packet_enc_algo if rsa_key is not None else crypto.ENC_NONE
        self.on_push = on_push
        self.pushes = 0  # pushes received, for tests and logs
        self._session = crypto.Session()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[tuple[int, int], asyncio.Future[framing.Frame]] = {}
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
            encrypting = self.packet_enc_algo != crypto.ENC_NONE
            # The SDK RSA-encrypts InitConnect whenever it has a key, and reads the
            # reply as RSA only when it asked for encryption.
            self._session = crypto.Session(
                key=self.rsa_key, rsa_out=self.rsa_key is not None, rsa_in=encrypting
            )
            decoder = framing.FrameDecoder(self.max_body, decrypt=self._session.open)
            self._tasks = [asyncio.create_task(self._read_loop(decoder), name="opend-read")]
            try:
                reply = await self._call(
                    framing.PROTO_INIT_CONNECT,
                    init_pb.Request(
                        c2s=init_pb.C2S(
                            clientVer=CLIENT_VER,
                            clientID=self.client_id,
                            recvNotify=self.recv_notify,
                            packetEncAlgo=self.packet_enc_algo,
                            pushProtoFmt=framing.FMT_PROTOBUF,
                            programmingLanguage="Python",
                            aiType=0,
                        )
                    ),
                    init_pb.Response,
                    self.connect_timeout,
                )
                if encrypting and self._session.cipher is None:
                    raise OpenDError(-500, 0, "InitConnect reply gave no usable AES key", 1001)
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
                "connected to %s (connID=%s, keepAlive=%ss, encryption=%s)",
                self.source,
                self.conn_id,
                self.keep_alive_interval,
                type(self._session.cipher).__name__ if self._session.cipher else "none",
            )

    async def ensure_connected(self, max_attempts: int | None = None) -> None:
        """Connect if needed, retrying with exponential backoff (forever if max_attempts None)."""
        retry = Backoff(self.backoff_initial, self.backoff_max).waits()
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
                wait = retry.next_wait()
                log.warning("connect to %s failed (%s); retrying in %.1fs", self.source, exc, wait)
                await self._sleep(wait)

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

    async def _read_loop(self, decoder: framing.FrameDecoder) -> None:
        reader = self._reader
        assert reader is not None
        reason = "connection closed by peer"
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                for frame in decoder.iter_feed(chunk):
                    self._route(frame)
        except framing.FrameError as exc:
            reason = f"bad frame from server: {exc}"
            log.error("%s: %s", self.source, reason)
        except (OSError, asyncio.IncompleteReadError) as exc:
            reason = f"connection error: {exc}"
        self._ready = False
        self._fail_pending(ConnectionLost(f"{self.source}: {reason}"))
        if self._writer is not None:
            self._writer.close()

    def _route(self, frame: framing.Frame) -> None:
        """A push goes to the push handler; a reply to the request with its protoID and serial."""
        if framing.is_push(frame.proto_id):
            self.pushes += 1
            OPEND_PUSHES.labels(str(frame.proto_id)).inc()
            if self.on_push is not None:
                try:
                    self.on_push(frame)
                except Exception:
                    log.exception("push handler failed for protoID %s", frame.proto_id)
            else:
                log.info("%s: %s", self.source, describe_push(frame))
            return
        if frame.proto_id == framing.PROTO_INIT_CONNECT:
            # Install the AES cipher before the next frame of this very chunk is read.
            self._install_cipher(frame)
        fut = self._pending.pop((frame.proto_id, frame.serial), None)
        if fut is None:
            log.warning(
                "%s: dropping a reply nobody waits for (protoID=%s serialNo=%s)",
                self.source,
                frame.proto_id,
                frame.serial,
            )
        elif not fut.done():
            fut.set_result(frame)

    def _install_cipher(self, frame: framing.Frame) -> None:
        if self.packet_enc_algo == crypto.ENC_NONE or self._session.cipher is not None:
            return
        reply = init_pb.Response()
        try:
            reply.ParseFromString(frame.body)
            if reply.retType != 0:
                return
            iv = reply.s2c.aesCBCiv if reply.s2c.HasField("aesCBCiv") else None
            self._session.cipher = crypto.make_cipher(
                self.packet_enc_algo, reply.s2c.connAESKey, iv
            )
        except (DecodeError, crypto.CryptoError) as exc:
            log.error("%s: InitConnect reply has no usable AES key: %s", self.source, exc)

    async def _keep_alive_loop(self) -> None:
        while self.connected:
            await self._sleep(self.keep_alive_interval * KEEP_ALIVE_FACTOR)
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
        key = (proto_id, serial)
        fut: asyncio.Future[framing.Frame] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        wait = self.timeout if timeout is None else timeout
        try:
            try:
                writer.write(
                    framing.encode_frame(
                        proto_id,
                        serial,
                        request.SerializeToString(),
                        encrypt=self._session.seal,
                    )
                )
                await writer.drain()
            except (OSError, RuntimeError) as exc:
                raise ConnectionLost(f"{self.source}: send failed: {exc}") from exc
            try:
                frame = await asyncio.wait_for(fut, wait)
            except TimeoutError:
                raise RequestTimeout(proto_id, serial, wait) from None
            except ConnectionLost:
                raise  # already says why the connection went (closed, bad frame, ...)
            except (OSError, RuntimeError) as exc:
                raise ConnectionLost(f"{self.source}: receive failed: {exc}") from exc
        finally:
            self._pending.pop(key, None)
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

    async def get_capital_flow(self, security: str, timeout: float | None = None) -> CapitalFlow:
        """Today's minute series of one security (INTRADAY), validated.

        Its own quota on OpenD, separate from capital distribution's; an invalid reply
        raises ``InvalidSnapshot`` naming the rule and the row.
        """
        market, code = to_wire(security)
        req = capflow_pb.Request()
        req.c2s.security.market = market
        req.c2s.security.code = code
        req.c2s.periodType = PERIOD_INTRADAY
        reply = await self.request(
            framing.PROTO_QOT_GET_CAPITAL_FLOW, req, capflow_pb.Response, timeout
        )
        return capital_flow_from_s2c(market, code, reply.s2c)

    async def get_user_security(self, group: str, timeout: float | None = None) -> list[str]:
        """The securities of one watchlist group of the Futu/moomoo app (3213), as
        "MARKET.CODE" in the group's order, each once.

        An unknown group raises ``UnknownGroupError``. Entries of a market capflow has no
        name for are left out, with a warning (the group may hold anything the app does).
        """
        req = user_security_pb.Request()
        req.c2s.groupName = group
        reply = await self.request(
            framing.PROTO_QOT_GET_USER_SECURITY, req, user_security_pb.Response, timeout
        )
        codes: list[str] = []
        for info in reply.s2c.staticInfoList:
            security = info.basic.security
            try:
                codes.append(from_wire(security.market, security.code))
            except SecurityFormatError as exc:
                log.warning("watchlist group %r: leaving out %r: %s", group, security.code, exc)
        return list(dict.fromkeys(codes))


def client_from_settings(
    settings: OpenDSettings,
    *,
    host: str | None = None,
    port: int | None = None,
    **kwargs: Any,
) -> OpenDClient:
    """The client the OpenD settings describe (host, port, timeout, RSA key file).

    ``host``/``port`` name one gateway of ``--opend``; the other settings (timeout, RSA
    key) are the same for every gateway.
    """
    key = crypto.load_rsa_key(settings.rsa_key) if settings.rsa_key else None
    return OpenDClient(
        settings.host if host is None else host,
        settings.port if port is None else port,
        timeout=settings.timeout,
        rsa_key=key,
        **kwargs,
    )
