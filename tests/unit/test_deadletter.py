"""DeadLetter.fitted: a copy that the producer accepts, and that says what it left out."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pipeline.deadletter import (
    HEADER_OFFSET,
    HEADER_ORIGINAL_KEY_SIZE,
    HEADER_ORIGINAL_SHA256,
    HEADER_ORIGINAL_SIZE,
    HEADER_TRUNCATED,
    DeadLetter,
    record_size,
)


def letter(key: bytes | None, value: bytes | None) -> DeadLetter:
    return DeadLetter(key, value, "decode", "DecodeError: bad", "snapshots", 2, 41)


def test_a_record_that_fits_is_unchanged() -> None:
    dl = letter(b"HK.00700", b"\xff not protobuf")
    key, value, headers = dl.fitted(1_000_000)
    assert (key, value, headers) == (dl.key, dl.value, dl.headers())
    assert HEADER_TRUNCATED not in dict(headers)


def test_a_million_byte_value_is_cut_to_the_producer_limit() -> None:
    original = bytes(range(256)) * 3907  # 1,000,192 bytes
    dl = letter(b"HK.00700", original)
    assert record_size(dl.key, dl.value, dl.headers()) > 1_000_000
    key, value, headers = dl.fitted(1_000_000)
    assert value is not None and key == b"HK.00700"
    assert record_size(key, value, headers) <= 1_000_000
    assert original.startswith(value) and len(value) > 990_000
    meta = dict(headers)
    assert meta[HEADER_TRUNCATED] == b"value"
    assert meta[HEADER_ORIGINAL_SIZE] == str(len(original)).encode()
    assert meta[HEADER_ORIGINAL_SHA256] == hashlib.sha256(original).hexdigest().encode()
    assert meta[HEADER_OFFSET] == b"41"


def test_a_huge_key_is_cut_too() -> None:
    dl = letter(b"k" * 5000, b"v" * 5000)
    key, value, headers = dl.fitted(2000)
    assert key == b"k" * 1024
    assert record_size(key, value, headers) <= 2000
    meta = dict(headers)
    assert meta[HEADER_TRUNCATED] == b"key,value"
    assert meta[HEADER_ORIGINAL_KEY_SIZE] == b"5000"


@settings(max_examples=200, deadline=None)
@given(
    key=st.one_of(st.none(), st.binary(max_size=300)),
    value=st.one_of(st.none(), st.binary(max_size=20_000)),
    limit=st.integers(min_value=1500, max_value=30_000),
)
def test_fitted_copy_fits_and_is_a_prefix(
    key: bytes | None, value: bytes | None, limit: int
) -> None:
    dl = letter(key, value)
    out_key, out_value, headers = dl.fitted(limit)
    assert record_size(out_key, out_value, headers) <= limit
    meta = dict(headers)
    if HEADER_TRUNCATED in meta:
        assert (value or b"").startswith(out_value or b"")
        assert meta[HEADER_ORIGINAL_SIZE] == str(len(value or b"")).encode()
        assert record_size(key, value, dl.headers()) > limit
    else:
        assert (out_key, out_value) == (key, value)
