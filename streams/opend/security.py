"""Security strings ("HK.00700") <-> OpenD's (QotMarket number, code).

Users and topic keys use the "MARKET.CODE" form the futu SDK uses; the wire carries
``Qot_Common.Security{market, code}``. Only the split at the first dot matters, so
US codes with dots ("US.BRK.B") keep them.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Market prefix -> Qot_Common.QotMarket number.
MARKETS: dict[str, int] = {
    "HK": 1,
    "US": 11,
    "SH": 21,
    "SZ": 22,
    "SG": 31,
    "JP": 41,
    "AU": 51,
    "MY": 61,
    "CA": 71,
}
_PREFIX_BY_NUMBER: dict[int, str] = {number: prefix for prefix, number in MARKETS.items()}
_PREFIX_BY_NUMBER[2] = "HK"  # QotMarket_HK_Future is deprecated and means HK

_CODE = re.compile(r"^\.?[A-Za-z0-9][A-Za-z0-9.\-_]{0,31}$")


class SecurityFormatError(ValueError):
    """A security string or market number that does not name a security."""


class SecurityId(NamedTuple):
    """A parsed security: market prefix, QotMarket number and code."""

    market: str
    qot_market: int
    code: str

    def __str__(self) -> str:
        return f"{self.market}.{self.code}"


def parse_security(text: str) -> SecurityId:
    """Parse "HK.00700" -> SecurityId("HK", 1, "00700"); raises SecurityFormatError."""
    if not isinstance(text, str):
        raise SecurityFormatError(f"security must be a string like 'HK.00700', got {text!r}")
    prefix, dot, code = text.strip().partition(".")
    if not dot:
        raise SecurityFormatError(f"{text!r}: expected MARKET.CODE, e.g. 'HK.00700'")
    market = prefix.upper()
    if market not in MARKETS:
        known = ", ".join(MARKETS)
        raise SecurityFormatError(f"{text!r}: unknown market {prefix!r} (known: {known})")
    if not _CODE.match(code):
        raise SecurityFormatError(f"{text!r}: invalid code {code!r}")
    return SecurityId(market, MARKETS[market], code)


def to_wire(text: str) -> tuple[int, str]:
    """Wire form: "HK.00700" -> (1, "00700")."""
    sec = parse_security(text)
    return sec.qot_market, sec.code


def market_prefix(qot_market: int) -> str:
    """QotMarket number -> "HK"; raises SecurityFormatError for unknown numbers."""
    try:
        return _PREFIX_BY_NUMBER[qot_market]
    except KeyError:
        raise SecurityFormatError(f"unknown QotMarket number {qot_market}") from None


def from_wire(qot_market: int, code: str) -> str:
    """String form: (1, "00700") -> "HK.00700"."""
    if not code or not _CODE.match(code):
        raise SecurityFormatError(f"invalid code {code!r}")
    return f"{market_prefix(qot_market)}.{code}"


# Market prefix -> IANA time zone of its exchange (updateTime and trading days are local).
MARKET_TZ: dict[str, str] = {
    "HK": "Asia/Hong_Kong",
    "US": "America/New_York",
    "SH": "Asia/Shanghai",
    "SZ": "Asia/Shanghai",
    "SG": "Asia/Singapore",
    "JP": "Asia/Tokyo",
    "AU": "Australia/Sydney",
    "MY": "Asia/Kuala_Lumpur",
    "CA": "America/Toronto",
}
