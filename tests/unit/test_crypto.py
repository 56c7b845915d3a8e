"""OpenD packet encryption: RSA for InitConnect, FTAES_ECB and AES_CBC bodies, framing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.opend import crypto, framing

KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)
AES_KEY = "0123456789abcdef"
AES_IV = "fedcba9876543210"


def pem(key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=700))
def test_rsa_round_trip_in_sdk_sized_chunks(data: bytes) -> None:
    sealed = crypto.rsa_encrypt(KEY, data)
    assert len(sealed) == 128 * -(-len(data) // 100)  # 100 plain bytes per 128-byte block
    assert crypto.rsa_decrypt(KEY, sealed) == data


@given(st.binary(max_size=300))
def test_ftaes_ecb_layout_and_round_trip(data: bytes) -> None:
    cipher = crypto.FtAesEcb(AES_KEY)
    sealed = cipher.encrypt(data)
    assert len(sealed) == 16 * -(-len(data) // 16) + 16  # whole blocks plus the tail block
    assert sealed[-16:-1] == b"\x00" * 15 and sealed[-1] == len(data) % 16
    assert cipher.decrypt(sealed) == data


@given(st.binary(max_size=300))
def test_aes_cbc_pkcs7_round_trip(data: bytes) -> None:
    cipher = crypto.AesCbc(AES_KEY, AES_IV)
    sealed = cipher.encrypt(data)
    assert len(sealed) == 16 * (len(data) // 16 + 1)  # PKCS#7 always pads
    assert cipher.decrypt(sealed) == data
    assert cipher.encrypt(data) == sealed  # every packet restarts from the IV, like the SDK


def wrong_or_error(decrypt: Callable[[], bytes], plain: bytes = b"hello") -> bool:
    """True when ``decrypt`` raises CryptoError or returns something else than ``plain``."""
    try:
        return decrypt() != plain
    except crypto.CryptoError:
        return True


def test_wrong_keys_and_bad_bodies_are_errors() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    # PKCS#1 v1.5 (implicit rejection in recent OpenSSL): a wrong key yields an error
    # or other bytes; the frame's SHA1 of the plain body catches the latter.
    assert wrong_or_error(lambda: crypto.rsa_decrypt(other, crypto.rsa_encrypt(KEY, b"hello")))
    session = crypto.Session(key=other, rsa_in=True)
    frame = framing.encode_frame(
        framing.PROTO_INIT_CONNECT, 1, b"hello", encrypt=crypto.Session(KEY, rsa_out=True).seal
    )
    with pytest.raises(framing.FrameError):  # DecryptError or BadSha1Error
        framing.FrameDecoder(decrypt=session.open).feed(frame)
    with pytest.raises(crypto.CryptoError, match="multiple"):
        crypto.rsa_decrypt(KEY, b"\x00" * 100)
    # A wrong AES key: bad padding (an error) or, by chance, valid padding and garbage.
    sealed = crypto.AesCbc(AES_KEY, AES_IV).encrypt(b"abc")
    assert wrong_or_error(lambda: crypto.AesCbc("x" * 16, AES_IV).decrypt(sealed), b"abc")
    with pytest.raises(crypto.CryptoError):
        crypto.FtAesEcb(AES_KEY).decrypt(b"\x00" * 20)
    with pytest.raises(crypto.CryptoError, match="16 bytes"):
        crypto.FtAesEcb("short")
    with pytest.raises(crypto.CryptoError, match="aesCBCiv"):
        crypto.make_cipher(crypto.ENC_AES_CBC, AES_KEY, None)


def test_cipher_choice_follows_the_reply() -> None:
    assert isinstance(crypto.make_cipher(crypto.ENC_AES_CBC, AES_KEY, AES_IV), crypto.AesCbc)
    assert isinstance(crypto.make_cipher(crypto.ENC_FTAES_ECB, AES_KEY, None), crypto.FtAesEcb)
    assert isinstance(crypto.make_cipher(crypto.ENC_AES_ECB, AES_KEY, None), crypto.FtAesEcb)
    key = crypto.random_key()
    assert len(key) == 16 and key.isalnum() and key != crypto.random_key()


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8]
)
def test_load_rsa_key_pkcs1_and_pkcs8(tmp_path: Path, fmt: serialization.PrivateFormat) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(pem(KEY, fmt))
    loaded = crypto.load_rsa_key(path)
    assert loaded.private_numbers() == KEY.private_numbers()


def test_load_rsa_key_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(crypto.CryptoError, match="cannot read"):
        crypto.load_rsa_key(tmp_path / "missing.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(crypto.CryptoError, match="not a PEM RSA private key"):
        crypto.load_rsa_key(junk)


@given(st.binary(max_size=200), st.sampled_from(["ecb", "cbc"]), st.integers(1, 64))
def test_encrypted_frames_decode_in_any_chunking(body: bytes, mode: str, step: int) -> None:
    cipher: crypto.PacketCipher = (
        crypto.AesCbc(AES_KEY, AES_IV) if mode == "cbc" else crypto.FtAesEcb(AES_KEY)
    )
    session = crypto.Session(cipher=cipher)
    data = framing.encode_frame(3212, 9, body, encrypt=session.seal) * 2
    decoder = framing.FrameDecoder(decrypt=session.open)
    frames = [f for i in range(0, len(data), step) for f in decoder.feed(data[i : i + step])]
    assert [(f.proto_id, f.serial, f.body) for f in frames] == [(3212, 9, body)] * 2


def test_header_sha1_is_of_the_plain_body_and_a_wrong_key_is_a_frame_error() -> None:
    session = crypto.Session(cipher=crypto.FtAesEcb(AES_KEY))
    data = framing.encode_frame(3212, 1, b"payload", encrypt=session.seal)
    header = framing.decode_header(data[: framing.HEADER_SIZE])
    assert header.sha1 == framing.hashlib.sha1(b"payload").digest()
    assert header.body_len == 32
    wrong = crypto.Session(cipher=crypto.AesCbc(AES_KEY, AES_IV))
    with pytest.raises(framing.FrameError):  # bad padding, or by chance a SHA1 mismatch
        framing.FrameDecoder(decrypt=wrong.open).feed(data)
    truncated = crypto.Session(cipher=crypto.FtAesEcb(AES_KEY))
    with pytest.raises(framing.DecryptError, match="cannot decrypt"):
        framing.FrameDecoder(decrypt=truncated.open).feed(
            framing.encode_frame(3212, 1, b"x" * 20)  # 20 bytes: not AES blocks + tail
        )


def test_init_connect_uses_rsa_only_in_the_directions_asked() -> None:
    client = crypto.Session(key=KEY, rsa_out=True, rsa_in=False)
    server = crypto.Session(key=KEY, rsa_in=True)
    sealed = client.seal(framing.PROTO_INIT_CONNECT, b"init")
    assert sealed != b"init" and server.open(framing.PROTO_INIT_CONNECT, sealed) == b"init"
    assert client.open(framing.PROTO_INIT_CONNECT, b"plain reply") == b"plain reply"
    assert client.seal(framing.PROTO_KEEP_ALIVE, b"ka") == b"ka"  # no AES negotiated yet
