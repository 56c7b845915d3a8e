"""Classifying failed OpenD replies, as the simulator and a real OpenD write them."""

from __future__ import annotations

import pytest

from streams.opend.errors import (
    ERR_RATE_LIMIT,
    ERR_UNKNOWN_SECURITY,
    ERR_UNSUPPORTED_SECURITY,
    OpenDError,
    RateLimitError,
    UnknownSecurityError,
    UnsupportedSecurityError,
    classify,
)


@pytest.mark.parametrize(
    ("err_code", "msg", "cls"),
    [
        (ERR_RATE_LIMIT, "", RateLimitError),
        (0, "获取资金分布频率太高, 请求频率限制为每30秒最多30次", RateLimitError),
        (0, "请求过于频繁", RateLimitError),
        (0, "Request frequency limit exceeded, please try again later", RateLimitError),
        (0, "Too frequent requests", RateLimitError),
        (ERR_UNKNOWN_SECURITY, "", UnknownSecurityError),
        (0, "未知股票 HK.99999", UnknownSecurityError),
        (0, "Unknown stock HK.99999", UnknownSecurityError),
        (ERR_UNSUPPORTED_SECURITY, "", UnsupportedSecurityError),
        (0, "该品种不支持此功能", UnsupportedSecurityError),
        (0, "Not supported for this security type", UnsupportedSecurityError),
        (0, "网络异常", OpenDError),
    ],
)
def test_classify(err_code: int, msg: str, cls: type[OpenDError]) -> None:
    err = classify(-1, err_code, msg, 3212)
    assert type(err) is cls
    assert (err.ret_type, err.err_code, err.ret_msg, err.proto_id) == (-1, err_code, msg, 3212)
    assert "3212" in str(err)
