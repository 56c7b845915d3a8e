"""Errors of the OpenD client, classified so callers can react (back off, skip, retry).

A reply with ``retType != 0`` becomes an :class:`OpenDError` subclass chosen from its
``errCode`` and ``retMsg``. The simulator writes stable error codes (below); a real
OpenD replies ``retType=-1`` with a localized message (Chinese or English) and codes
we do not rely on, so the message text is matched as well.
"""

from __future__ import annotations

# errCode values the simulator writes (a real OpenD may use others; text decides then).
ERR_RATE_LIMIT = 1001
ERR_UNKNOWN_SECURITY = 1002
ERR_UNSUPPORTED_SECURITY = 1003
ERR_BAD_REQUEST = 1004

_RATE_LIMIT_WORDS = (
    "频率",  # "...频率太高" / "请求频率..." in Chinese OpenD messages
    "频繁",
    "frequen",  # "frequency limit", "too frequent"
    "too many request",
    "rate limit",
    "限频",
)
_UNKNOWN_WORDS = (
    "unknown stock",
    "unknown security",
    "未知股票",
    "找不到",
    "不存在",
    "not exist",
    "not found",
)
_UNSUPPORTED_WORDS = ("not support", "unsupported", "不支持")


class OpenDError(Exception):
    """OpenD answered a request with retType != 0."""

    def __init__(self, ret_type: int, err_code: int, ret_msg: str, proto_id: int) -> None:
        super().__init__(
            f"OpenD protoID {proto_id}: retType={ret_type} errCode={err_code} {ret_msg!r}"
        )
        self.ret_type = ret_type
        self.err_code = err_code
        self.ret_msg = ret_msg
        self.proto_id = proto_id


class RateLimitError(OpenDError):
    """Over the request quota (30 per 30 s for capital distribution): back off."""


class UnknownSecurityError(OpenDError):
    """The security does not exist."""


class UnsupportedSecurityError(OpenDError):
    """The security exists but the request does not apply (e.g. an index)."""


class ConnectionLost(ConnectionError):
    """The connection closed (or was closed) while a request was pending."""


class RequestTimeout(TimeoutError):
    """No reply arrived within the per-request timeout."""

    def __init__(self, proto_id: int, serial: int, timeout: float) -> None:
        super().__init__(f"no reply to protoID {proto_id} serialNo {serial} in {timeout:g}s")
        self.proto_id = proto_id
        self.serial = serial
        self.timeout = timeout


def classify(ret_type: int, err_code: int, ret_msg: str, proto_id: int) -> OpenDError:
    """The most specific OpenDError for a failed reply."""
    text = ret_msg.lower()
    cls: type[OpenDError] = OpenDError
    if err_code == ERR_RATE_LIMIT or any(w in text for w in _RATE_LIMIT_WORDS):
        cls = RateLimitError
    elif err_code == ERR_UNSUPPORTED_SECURITY or any(w in text for w in _UNSUPPORTED_WORDS):
        cls = UnsupportedSecurityError
    elif err_code == ERR_UNKNOWN_SECURITY or any(w in text for w in _UNKNOWN_WORDS):
        cls = UnknownSecurityError
    return cls(ret_type, err_code, ret_msg, proto_id)
