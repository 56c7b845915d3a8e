"""Security strings ("HK.00700") <-> OpenD's (QotMarket number, code).

The table and the parser live in :mod:`streams.domain.market`; this module keeps the
names the OpenD client, the simulator and the commands import.
"""

from __future__ import annotations

from streams.domain.market import (
    MARKET_TZ,
    MARKETS,
    SecurityFormatError,
    SecurityId,
    from_wire,
    market_prefix,
    parse_security,
    to_wire,
)

__all__ = [
    "MARKETS",
    "MARKET_TZ",
    "SecurityFormatError",
    "SecurityId",
    "from_wire",
    "market_prefix",
    "parse_security",
    "to_wire",
]
