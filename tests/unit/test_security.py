"""Security strings <-> (QotMarket, code)."""

from __future__ import annotations

import pytest

from streams.domain.market import (
    SecurityFormatError,
    SecurityId,
    from_wire,
    market_prefix,
    parse_security,
    to_wire,
)


@pytest.mark.parametrize(
    ("text", "market", "number", "code"),
    [
        ("HK.00700", "HK", 1, "00700"),
        ("US.AAPL", "US", 11, "AAPL"),
        ("SH.600519", "SH", 21, "600519"),
        ("SZ.000001", "SZ", 22, "000001"),
        ("SG.D05", "SG", 31, "D05"),
        ("JP.7203", "JP", 41, "7203"),
        ("US.BRK.B", "US", 11, "BRK.B"),
        ("US..IXIC", "US", 11, ".IXIC"),
        ("hk.00700", "HK", 1, "00700"),
    ],
)
def test_parse_and_back(text: str, market: str, number: int, code: str) -> None:
    sec = parse_security(text)
    assert sec == SecurityId(market, number, code)
    assert to_wire(text) == (number, code)
    assert from_wire(number, code) == f"{market}.{code}" == str(sec)


@pytest.mark.parametrize(
    "bad", ["", "00700", "HK.", "XX.00700", ".00700", "HK.00 700", "HK.€", "HK." + "1" * 40]
)
def test_bad_strings(bad: str) -> None:
    with pytest.raises(SecurityFormatError) as info:
        parse_security(bad)
    assert isinstance(info.value, ValueError)


def test_non_string() -> None:
    with pytest.raises(SecurityFormatError):
        parse_security(700)  # type: ignore[arg-type]


def test_unknown_market_number() -> None:
    with pytest.raises(SecurityFormatError):
        market_prefix(999)
    assert market_prefix(2) == "HK"  # deprecated HK future market maps to HK
