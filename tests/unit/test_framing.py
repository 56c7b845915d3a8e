"""OpenD frame codec: header layout, SHA1 check, size limit, incremental decoding."""

from __future__ import annotations

import hashlib
import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.opend import framing
from streams.opend.framing import (
    HEADER_SIZE,
    BadMagicError,
    BadSha1Error,
    Frame,
    FrameDecoder,
    FrameError,
    OversizeError,
    decode_frame,
    encode_frame,
)

u32 = st.integers(min_value=0, max_value=2**32 - 1)
bodies = st.binary(max_size=2048)


def test_header_layout_is_little_endian_44_bytes() -> None:
    body = b"hello"
    data = encode_frame(3212, 0x01020304, body, fmt=1)
    assert len(data) == HEADER_SIZE + len(body) == 49
    assert data[:2] == b"FT"
    assert struct.unpack("<I", data[2:6])[0] == 3212
    assert data[6] == 1 and data[7] == 0
    assert data[8:12] == b"\x04\x03\x02\x01"
    assert struct.unpack("<I", data[12:16])[0] == 5
    assert data[16:36] == hashlib.sha1(body).digest()
    assert data[36:44] == b"\x00" * 8
    assert data[44:] == body


def test_matches_the_futu_sdk_header_format() -> None:
    # The SDK packs with "<1s1sI2B2I20s8s"; our struct must be byte-identical.
    body = b"\x08\x01"
    sdk = struct.pack(
        "<1s1sI2B2I20s8s", b"F", b"T", 1001, 0, 0, 7, 2, hashlib.sha1(body).digest(), b"\0" * 8
    )
    assert encode_frame(1001, 7, body)[:HEADER_SIZE] == sdk


def test_bad_magic() -> None:
    data = b"XX" + encode_frame(1, 1, b"x")[2:]
    with pytest.raises(BadMagicError):
        decode_frame(data)


def test_bad_sha1_carries_ids() -> None:
    data = bytearray(encode_frame(3212, 42, b"body"))
    data[-1] ^= 0xFF
    with pytest.raises(BadSha1Error) as info:
        decode_frame(bytes(data))
    assert info.value.proto_id == 3212 and info.value.serial == 42
    assert "serialNo=42" in str(info.value)


def test_oversize_rejected_from_header_alone() -> None:
    header = encode_frame(3212, 9, b"x" * 100)[:HEADER_SIZE]
    decoder = FrameDecoder(max_body=99)
    with pytest.raises(OversizeError) as info:
        decoder.feed(header)  # no body needed: we never buffer an oversize body
    assert info.value.proto_id == 3212 and info.value.serial == 9
    assert isinstance(info.value, FrameError)


def test_length_mismatch() -> None:
    with pytest.raises(FrameError):
        decode_frame(encode_frame(1, 1, b"abc")[:-1])


def test_decoder_waits_for_complete_frames() -> None:
    data = encode_frame(1004, 5, b"abcdef")
    decoder = FrameDecoder()
    assert decoder.feed(data[:10]) == []
    assert decoder.feed(data[10:47]) == []
    assert decoder.buffered == 3
    assert decoder.feed(data[47:]) == [Frame(1004, 5, b"abcdef")]
    assert decoder.buffered == 0


@given(proto_id=u32, serial=u32, body=bodies, fmt=st.sampled_from([0, 1]))
def test_round_trip(proto_id: int, serial: int, body: bytes, fmt: int) -> None:
    frame = decode_frame(encode_frame(proto_id, serial, body, fmt))
    assert (frame.proto_id, frame.serial, frame.body, frame.fmt) == (proto_id, serial, body, fmt)


@settings(max_examples=60)
@given(
    frames=st.lists(st.tuples(u32, u32, bodies), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=20000), max_size=12),
)
def test_arbitrary_chunking_gives_the_same_frames(
    frames: list[tuple[int, int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(p, s, b) for p, s, b in frames)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    out: list[Frame] = []
    for a, b in itertools.pairwise(points):
        out.extend(decoder.feed(stream[a:b]))
    assert [(f.proto_id, f.serial, f.body) for f in out] == frames
    assert decoder.buffered == 0


@given(body=bodies, index=st.integers(min_value=0, max_value=19), flip=st.integers(1, 255))
def test_any_corrupted_sha1_byte_is_detected(body: bytes, index: int, flip: int) -> None:
    data = bytearray(encode_frame(3212, 1, body))
    data[16 + index] ^= flip
    with pytest.raises(BadSha1Error):
        FrameDecoder().feed(bytes(data))


def test_protocol_ids() -> None:
    assert framing.PROTO_INIT_CONNECT == 1001
    assert framing.PROTO_GET_GLOBAL_STATE == 1002
    assert framing.PROTO_KEEP_ALIVE == 1004
    assert framing.PROTO_QOT_GET_CAPITAL_DISTRIBUTION == 3212
