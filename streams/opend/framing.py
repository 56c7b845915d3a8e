"""OpenD frames: a 44-byte little-endian header, then the body.

    "FT" | protoID u32 | protoFmtType u8 | protoVer u8 | serialNo u32 | bodyLen u32
    | SHA1(body) 20 bytes | reserved 8 bytes

Both the client and the simulator share this codec. The incremental
:class:`FrameDecoder` takes arbitrary chunks, so framing is testable without sockets
and a peer cannot make us buffer more than one bounded body.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

MAGIC = b"FT"
HEADER = struct.Struct("<2sIBBII20s8s")
HEADER_SIZE = HEADER.size  # 44
DEFAULT_MAX_BODY = 4 * 1024 * 1024  # far above any reply we use; stops memory abuse

FMT_PROTOBUF = 0
FMT_JSON = 1

# Protocol ids we speak.
PROTO_INIT_CONNECT = 1001
PROTO_GET_GLOBAL_STATE = 1002
PROTO_NOTIFY = 1003
PROTO_KEEP_ALIVE = 1004
PROTO_QOT_GET_CAPITAL_FLOW = 3211
PROTO_QOT_GET_CAPITAL_DISTRIBUTION = 3212
PROTO_QOT_GET_USER_SECURITY = 3213

# Protocol ids OpenD pushes unasked (the official SDK's ProtoId.All_PushId): their
# serialNo means nothing to a client, so they are never matched to a pending request.
PUSH_PROTO_IDS: frozenset[int] = frozenset(
    {
        PROTO_NOTIFY,
        2208,  # Trd_UpdateOrder
        2218,  # Trd_UpdateOrderFill
        3005,  # Qot_UpdateBasicQot
        3007,  # Qot_UpdateKL
        3009,  # Qot_UpdateRT
        3011,  # Qot_UpdateTicker
        3013,  # Qot_UpdateOrderBook
        3015,  # Qot_UpdateBroker
        3019,  # Qot_UpdatePriceReminder
        3261,  # Qot_PushIndicatorCalc
        3310,  # Qot_UpdateOptionEvent
        3450,  # Qot_UpdateEventContractOrderBook
        3451,  # Qot_UpdateEventContractKline
        3452,  # Qot_UpdateEventContractTicker
    }
)

# Body transform of an encrypted connection: (protoID, body) -> body.
BodyCodec = Callable[[int, bytes], bytes]


def is_push(proto_id: int) -> bool:
    """Whether frames of this protoID are pushes (never replies to a request)."""
    return proto_id in PUSH_PROTO_IDS


class FrameError(Exception):
    """A frame that cannot be trusted; the connection must be dropped."""

    def __init__(self, message: str, proto_id: int | None = None, serial: int | None = None):
        where = []
        if proto_id is not None:
            where.append(f"protoID={proto_id}")
        if serial is not None:
            where.append(f"serialNo={serial}")
        super().__init__(message + (f" ({', '.join(where)})" if where else ""))
        self.proto_id = proto_id
        self.serial = serial


class BadMagicError(FrameError):
    """The header does not start with "FT" (not an OpenD peer, or out of sync)."""


class BadSha1Error(FrameError):
    """The body's SHA1 does not match the header (corrupted body)."""


class OversizeError(FrameError):
    """bodyLen exceeds the configured limit."""


class DecryptError(FrameError):
    """The body cannot be decrypted (wrong key, wrong algorithm, corrupted)."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame."""

    proto_id: int
    serial: int
    body: bytes = field(repr=False)
    fmt: int = FMT_PROTOBUF
    proto_ver: int = 0


def encode_frame(
    proto_id: int,
    serial: int,
    body: bytes,
    fmt: int = FMT_PROTOBUF,
    proto_ver: int = 0,
    encrypt: BodyCodec | None = None,
) -> bytes:
    """Header + body, ready to write.

    With ``encrypt`` the SHA1 stays that of the plain body and bodyLen becomes the
    encrypted length, as OpenD and the official SDK frame encrypted packets.
    """
    sha1 = hashlib.sha1(body).digest()
    if encrypt is not None:
        body = encrypt(proto_id, body)
    header = HEADER.pack(MAGIC, proto_id, fmt, proto_ver, serial, len(body), sha1, b"\x00" * 8)
    return header + body


@dataclass(frozen=True)
class Header:
    """The fixed-size part of a frame."""

    proto_id: int
    fmt: int
    proto_ver: int
    serial: int
    body_len: int
    sha1: bytes


def decode_header(data: bytes, max_body: int = DEFAULT_MAX_BODY) -> Header:
    """Parse and validate a 44-byte header (magic and size; SHA1 needs the body)."""
    if len(data) != HEADER_SIZE:
        raise FrameError(f"header must be {HEADER_SIZE} bytes, got {len(data)}")
    magic, proto_id, fmt, ver, serial, body_len, sha1, _reserved = HEADER.unpack(data)
    if magic != MAGIC:
        raise BadMagicError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if body_len > max_body:
        raise OversizeError(
            f"body of {body_len} bytes exceeds the limit of {max_body}", proto_id, serial
        )
    return Header(proto_id, fmt, ver, serial, body_len, sha1)


def decode_frame(data: bytes, max_body: int = DEFAULT_MAX_BODY) -> Frame:
    """Decode exactly one complete frame."""
    header = decode_header(data[:HEADER_SIZE], max_body)
    body = data[HEADER_SIZE:]
    if len(body) != header.body_len:
        raise FrameError(
            f"body is {len(body)} bytes, header says {header.body_len}",
            header.proto_id,
            header.serial,
        )
    return _check(header, body)


def _check(header: Header, body: bytes, decrypt: BodyCodec | None = None) -> Frame:
    if decrypt is not None:
        try:
            body = decrypt(header.proto_id, body)
        except Exception as exc:
            raise DecryptError(
                f"cannot decrypt body: {exc}", header.proto_id, header.serial
            ) from exc
    if hashlib.sha1(body).digest() != header.sha1:
        raise BadSha1Error("body SHA1 mismatch", header.proto_id, header.serial)
    return Frame(header.proto_id, header.serial, body, header.fmt, header.proto_ver)


class FrameDecoder:
    """Incremental decoder: ``feed(chunk)`` returns the frames completed by that chunk.

    After it raises, the stream is out of sync and the decoder must not be used again.
    ``decrypt`` (settable once a connection negotiated encryption) turns each body
    back into plain bytes before the SHA1 check.
    """

    def __init__(self, max_body: int = DEFAULT_MAX_BODY, decrypt: BodyCodec | None = None) -> None:
        self.max_body = max_body
        self.decrypt = decrypt
        self._buf = bytearray()
        self._header: Header | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[Frame]:
        return list(self.iter_feed(chunk))

    def iter_feed(self, chunk: bytes) -> Iterator[Frame]:
        """Frames completed by ``chunk``, decoded one at a time.

        Lazily, so a peer can switch ``decrypt`` between two frames of one chunk (the
        InitConnect reply negotiates the AES key for the very next frame).
        """
        self._buf += chunk
        while True:
            if self._header is None:
                if len(self._buf) < HEADER_SIZE:
                    return
                self._header = decode_header(bytes(self._buf[:HEADER_SIZE]), self.max_body)
                del self._buf[:HEADER_SIZE]
            need = self._header.body_len
            if len(self._buf) < need:
                return
            body = bytes(self._buf[:need])
            del self._buf[:need]
            header, self._header = self._header, None
            yield _check(header, body, self.decrypt)
