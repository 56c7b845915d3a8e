"""Errors of the OpenD client, classified so callers can react (back off, skip, retry).

A reply with ``retType != 0`` becomes an :class:`OpenDError` subclass chosen from its
``retType`` and ``retMsg``, as the official SDK does: OpenD's protocol says clients
judge a result by retType and retMsg, and that ``errCode`` is for logging only. A
real OpenD answers ``retType=-1`` with a localized message (Chinese or English);
the words below match those texts. ``errCode`` is kept on the error for logs.
"""

from __future__ import annotations

from streams.opend.framing import PROTO_QOT_GET_USER_SECURITY

# Common.RetType values other than success.
RET_FAILED = -1
RET_TIMEOUT = -100
RET_DISCONNECT = -200
RET_UNKNOWN = -400
RET_INVALID = -500

# errCode values the simulator writes (logged only; the text decides the class).
ERR_RATE_LIMIT = 1001
ERR_UNKNOWN_SECURITY = 1002
ERR_UNSUPPORTED_SECURITY = 1003
ERR_BAD_REQUEST = 1004
ERR_NO_QUOTE_RIGHT = 1005
ERR_UNKNOWN_GROUP = 1006

_RATE_LIMIT_WORDS = (
    "频率",  # "...频率太高" / "请求频率..." in Chinese OpenD messages
    "频繁",
    "frequen",  # "frequency limit", "too frequent"
    "too many request",
    "rate limit",
    "限频",
    "限流",  # "限流" (throttled)
)
_NO_RIGHT_WORDS = (
    "无权限",  # "无权限获取...行情" / "无行情权限"
    "无行情权限",
    "没有权限",
    "没有行情权限",
    "行情权限不足",
    "no quote right",
    "no right",
    "no permission",
    "permission denied",
    "quote right",
    "quotes right",
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
_GROUP_WORDS = ("分组", "group")  # in Qot_GetUserSecurity's replies: about the group


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
    """Over a request quota (30 per 30 s for capital distribution, and separately for
    capital flow): back off. ``proto_id`` says whose quota it was."""


class UnknownSecurityError(OpenDError):
    """The security does not exist."""


class UnsupportedSecurityError(OpenDError):
    """The security exists but the request does not apply (e.g. an index)."""


class UnknownGroupError(OpenDError):
    """Qot_GetUserSecurity named a watchlist group the account does not have."""


class NoQuoteRightError(OpenDError):
    """The OpenD account has no quote right for this market or security (may be bought later)."""


class ServerTimeoutError(OpenDError):
    """OpenD itself timed out (retType -100): transient, not the security's fault."""


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
    """The most specific OpenDError for a failed reply, from retType and retMsg only."""
    text = ret_msg.lower()
    cls: type[OpenDError] = OpenDError
    if ret_type == RET_TIMEOUT:
        cls = ServerTimeoutError
    elif any(w in text for w in _RATE_LIMIT_WORDS):
        cls = RateLimitError
    elif any(w in text for w in _NO_RIGHT_WORDS):
        cls = NoQuoteRightError
    elif proto_id == PROTO_QOT_GET_USER_SECURITY and (
        any(w in text for w in _GROUP_WORDS) or any(w in text for w in _UNKNOWN_WORDS)
    ):
        cls = UnknownGroupError
    elif any(w in text for w in _UNSUPPORTED_WORDS):
        cls = UnsupportedSecurityError
    elif any(w in text for w in _UNKNOWN_WORDS):
        cls = UnknownSecurityError
    return cls(ret_type, err_code, ret_msg, proto_id)
