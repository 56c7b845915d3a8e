"""OpenD packet encryption: RSA for InitConnect, then AES with the key OpenD hands out.

An OpenD configured with an RSA private key expects the InitConnect request RSA
encrypted (PKCS#1 v1.5, in chunks) and, when the client asked for a
``packetEncAlgo`` other than None, answers it RSA encrypted with a random 16-byte
``connAESKey`` (and ``aesCBCiv`` for CBC). Every later body on that connection is
AES encrypted. Both peers hold the same private key file. Layouts follow the
official SDK (``futu.common.sys_config.RsaCrypt`` and ``futu.common.conn_mng``):

- RSA: plain chunks of 100 bytes per 128-byte (1024-bit) key block, each encrypted
  with the public half; ciphertext is cut into key-size blocks to decrypt.
- FTAES_ECB (0): zero-padded to 16 bytes, AES-ECB, plus a 16-byte tail whose last
  byte is ``len(plain) % 16`` so the padding can be cut again.
- AES_CBC (2): PKCS#7 padding, AES-CBC with the negotiated IV, restarted per packet.

The SHA1 in the frame header is of the plain body (see ``framing.encode_frame``);
this module only transforms bodies. Only the ``cryptography`` package does crypto.
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from streams.opend import framing

ENC_FTAES_ECB = 0  # Common.PacketEncAlgo_FTAES_ECB
ENC_NONE = -1  # Common.PacketEncAlgo_None
ENC_AES_ECB = 1  # Common.PacketEncAlgo_AES_ECB (standard ECB; served as FTAES_ECB)
ENC_AES_CBC = 2  # Common.PacketEncAlgo_AES_CBC

ALGO_NAMES: dict[str, int] = {"none": ENC_NONE, "ecb": ENC_FTAES_ECB, "cbc": ENC_AES_CBC}
AES_BLOCK = 16
_KEY_ALPHABET = string.ascii_letters + string.digits


class CryptoError(ValueError):
    """A key that cannot be used, or a body that cannot be decrypted."""


def load_rsa_key(path: str | Path) -> rsa.RSAPrivateKey:
    """The RSA private key in ``path`` (PEM, PKCS#1 or PKCS#8, no passphrase)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CryptoError(f"cannot read RSA key file {path}: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"{path} is not a PEM RSA private key without passphrase") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CryptoError(f"{path} holds a {type(key).__name__}, not an RSA private key")
    return key


def _plain_chunk(key: rsa.RSAPrivateKey) -> int:
    # The SDK writes 100 plain bytes per 1024-bit block (200 per 2048-bit one).
    size = key.key_size // 8
    return min(size * 100 // 128, size - 11)


def rsa_encrypt(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """PKCS#1 v1.5 with the public half, chunk by chunk (an empty body stays empty)."""
    step = _plain_chunk(key)
    public = key.public_key()
    return b"".join(
        public.encrypt(data[i : i + step], asym_padding.PKCS1v15())
        for i in range(0, len(data), step)
    )


def rsa_decrypt(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """Inverse of :func:`rsa_encrypt`: one key-size block at a time.

    A different key usually yields other bytes rather than an error (PKCS#1 v1.5
    implicit rejection); the frame header's SHA1 of the plain body catches that.
    """
    size = key.key_size // 8
    if len(data) % size:
        raise CryptoError(f"RSA body of {len(data)} bytes is not a multiple of {size}")
    try:
        return b"".join(
            key.decrypt(data[i : i + size], asym_padding.PKCS1v15())
            for i in range(0, len(data), size)
        )
    except ValueError as exc:
        raise CryptoError("RSA decryption failed (a different key on the peer?)") from exc


class PacketCipher(Protocol):
    """AES body cipher of one connection."""

    algo: int

    def encrypt(self, data: bytes) -> bytes: ...

    def decrypt(self, data: bytes) -> bytes: ...


def _key_bytes(text: str, what: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) != AES_BLOCK:
        raise CryptoError(f"{what} must be 16 bytes, got {len(raw)}")
    return raw


class FtAesEcb:
    """OpenD's modified ECB: zero padding plus a 16-byte tail recording the last block's length."""

    algo = ENC_FTAES_ECB

    def __init__(self, key: str) -> None:
        self._cipher = Cipher(algorithms.AES(_key_bytes(key, "connAESKey")), modes.ECB())

    def encrypt(self, data: bytes) -> bytes:
        tail = len(data) % AES_BLOCK
        padded = data + b"\x00" * ((AES_BLOCK - tail) % AES_BLOCK)
        enc = self._cipher.encryptor()
        return enc.update(padded) + enc.finalize() + b"\x00" * 15 + bytes([tail])

    def decrypt(self, data: bytes) -> bytes:
        if len(data) < AES_BLOCK or len(data) % AES_BLOCK:
            raise CryptoError(f"FTAES_ECB body of {len(data)} bytes is not whole blocks + tail")
        tail = data[-1]
        if tail >= AES_BLOCK:
            raise CryptoError(f"FTAES_ECB tail says {tail} bytes in the last block")
        dec = self._cipher.decryptor()
        plain = dec.update(data[:-AES_BLOCK]) + dec.finalize()
        if tail:
            plain = plain[: len(plain) - (AES_BLOCK - tail)]
        return plain


class AesCbc:
    """Standard AES-CBC with PKCS#7 padding; every packet starts from the negotiated IV."""

    algo = ENC_AES_CBC

    def __init__(self, key: str, iv: str) -> None:
        self._key = _key_bytes(key, "connAESKey")
        self._iv = _key_bytes(iv, "aesCBCiv")

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._iv))

    def encrypt(self, data: bytes) -> bytes:
        padder = padding.PKCS7(128).padder()
        padded = padder.update(data) + padder.finalize()
        enc = self._cipher().encryptor()
        return enc.update(padded) + enc.finalize()

    def decrypt(self, data: bytes) -> bytes:
        if not data or len(data) % AES_BLOCK:
            raise CryptoError(f"AES_CBC body of {len(data)} bytes is not whole blocks")
        dec = self._cipher().decryptor()
        padded = dec.update(data) + dec.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError as exc:
            raise CryptoError("AES_CBC padding is invalid (wrong key?)") from exc


def make_cipher(algo: int, key: str, iv: str | None) -> PacketCipher:
    """The cipher OpenD's InitConnect reply selects: CBC when it sent an IV, else FTAES_ECB."""
    if iv:
        return AesCbc(key, iv)
    if algo == ENC_AES_CBC:
        raise CryptoError("AES_CBC negotiated but the InitConnect reply has no aesCBCiv")
    return FtAesEcb(key)


def random_key() -> str:
    """A 16-character key or IV as OpenD hands them out (printable, so it fits a string field)."""
    return "".join(_KEY_ALPHABET[b % len(_KEY_ALPHABET)] for b in os.urandom(AES_BLOCK))


@dataclass
class Session:
    """Body codec of one connection, for either peer.

    ``rsa_out``/``rsa_in``: whether InitConnect bodies are RSA encrypted in each
    direction (the SDK encrypts its request whenever a key is configured, but reads
    the reply as RSA only when it asked for encryption). ``cipher`` is set once the
    InitConnect exchange negotiated AES; from then on every other body uses it.
    """

    key: rsa.RSAPrivateKey | None = None
    rsa_out: bool = False
    rsa_in: bool = False
    cipher: PacketCipher | None = field(default=None)

    def seal(self, proto_id: int, body: bytes) -> bytes:
        if proto_id == framing.PROTO_INIT_CONNECT:
            if self.rsa_out and self.key is not None:
                return rsa_encrypt(self.key, body)
            return body
        return self.cipher.encrypt(body) if self.cipher is not None else body

    def open(self, proto_id: int, body: bytes) -> bytes:
        if proto_id == framing.PROTO_INIT_CONNECT:
            if self.rsa_in and self.key is not None:
                return rsa_decrypt(self.key, body)
            return body
        return self.cipher.decrypt(body) if self.cipher is not None else body

    @property
    def encrypted(self) -> bool:
        return self.cipher is not None
