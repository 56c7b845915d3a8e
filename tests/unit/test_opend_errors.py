"""Classifying failed OpenD replies by retType and retMsg, as a real OpenD writes them.

errCode is for logging only (OpenD's protocol says so): a code alone never picks the
class, and an unrelated text with the simulator's rate-limit code is a plain error.
"""

from __future__ import annotations

import pytest

from streams.opend.errors import (
    ERR_NO_QUOTE_RIGHT,
    ERR_RATE_LIMIT,
    ERR_UNKNOWN_SECURITY,
    ERR_UNSUPPORTED_SECURITY,
    RET_TIMEOUT,
    NoQuoteRightError,
    OpenDError,
    RateLimitError,
    ServerTimeoutError,
    UnknownGroupError,
    UnknownSecurityError,
    UnsupportedSecurityError,
    classify,
)
from streams.opend_sim.server import (
    FLOW_RATE_LIMIT_MSG,
    NO_RIGHT_MSG,
    PERIOD_MSG,
    RATE_LIMIT_MSG,
    UNKNOWN_GROUP_MSG,
    UNKNOWN_MSG,
    UNSUPPORTED_MSG,
)


@pytest.mark.parametrize(
    ("err_code", "msg", "cls"),
    [
        (0, "获取资金分布频率太高, 请求频率限制为每30秒最多30次", RateLimitError),
        (0, "请求过于频繁", RateLimitError),
        (0, "获取资金流向频率太高, 请求频率限制为每30秒最多30次", RateLimitError),
        (0, "请求被限流, 请降低请求频次", RateLimitError),
        (0, "Request frequency limit exceeded, please try again later", RateLimitError),
        (0, "Too frequent requests", RateLimitError),
        (0, "未知股票 HK.99999", UnknownSecurityError),
        (0, "Unknown stock HK.99999", UnknownSecurityError),
        (0, "股票不存在", UnknownSecurityError),
        (0, "该品种不支持此功能", UnsupportedSecurityError),
        (0, "Not supported for this security type", UnsupportedSecurityError),
        (0, "无权限获取美股行情", NoQuoteRightError),
        (0, "No quote right for US market", NoQuoteRightError),
        (0, "网络异常", OpenDError),
        # The codes alone (the simulator's invented ones) classify nothing.
        (ERR_RATE_LIMIT, "", OpenDError),
        (ERR_UNKNOWN_SECURITY, "", OpenDError),
        (ERR_UNSUPPORTED_SECURITY, "", OpenDError),
        (ERR_NO_QUOTE_RIGHT, "", OpenDError),
        (ERR_RATE_LIMIT, "some unrelated failure", OpenDError),
        (ERR_UNKNOWN_SECURITY, "no quote right", NoQuoteRightError),
    ],
)
def test_classify(err_code: int, msg: str, cls: type[OpenDError]) -> None:
    err = classify(-1, err_code, msg, 3212)
    assert type(err) is cls
    assert (err.ret_type, err.err_code, err.ret_msg, err.proto_id) == (-1, err_code, msg, 3212)
    assert "3212" in str(err)


def test_server_timeout_is_told_by_ret_type() -> None:
    err = classify(RET_TIMEOUT, 0, "", 3212)
    assert type(err) is ServerTimeoutError


@pytest.mark.parametrize(
    ("text", "cls"),
    [
        (RATE_LIMIT_MSG.format(limit=30, window=30), RateLimitError),
        (FLOW_RATE_LIMIT_MSG.format(limit=30, window=30), RateLimitError),
        (UNKNOWN_MSG.format(security="HK.99999"), UnknownSecurityError),
        (UNSUPPORTED_MSG.format(security="HK.800000"), UnsupportedSecurityError),
        (NO_RIGHT_MSG.format(market="US"), NoQuoteRightError),
    ],
)
def test_simulator_texts_classify_without_codes(text: str, cls: type[OpenDError]) -> None:
    assert type(classify(-1, 0, text, 3212)) is cls


def test_the_simulators_period_refusal_is_no_security_fault() -> None:
    """periodType other than INTRADAY: a plain error, not "unsupported security"."""
    assert type(classify(-1, 0, PERIOD_MSG.format(period=2), 3211)) is OpenDError


@pytest.mark.parametrize(
    "text",
    [
        UNKNOWN_GROUP_MSG.format(group="Tech"),
        "自选股分组不存在",
        "未知分组",
        "Group not found",
        "unknown group name",
        "not exist",
    ],
)
def test_an_unknown_watchlist_group_is_told_by_the_protocol_that_asked(text: str) -> None:
    """In a Qot_GetUserSecurity reply "unknown" is about the group, never a security."""
    assert type(classify(-1, 0, text, 3213)) is UnknownGroupError
    assert type(classify(-1, 0, "请求过于频繁", 3213)) is RateLimitError
    assert type(classify(-1, 0, "网络异常", 3213)) is OpenDError
