"""The typed result of Qot_GetCapitalDistribution and its conversion to our topic record.

:class:`CapitalDistribution` is what the client returns; ``snapshot_to_proto`` turns it
into ``capflow.v1.DistributionSnapshot`` (adding trading day, receive time and source),
the payload of ``capflow.distribution.v1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from streams.opend.security import MARKET_TZ, from_wire, parse_security
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pb.opend import Qot_GetCapitalDistribution_pb2 as capdist_pb

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}")

AMOUNT_FIELDS: tuple[str, ...] = (
    "capital_in_super",
    "capital_in_big",
    "capital_in_mid",
    "capital_in_small",
    "capital_out_super",
    "capital_out_big",
    "capital_out_mid",
    "capital_out_small",
)


@dataclass(frozen=True)
class CapitalDistribution:
    """One reply: cumulative amounts per order class since the session opened."""

    security: str  # "HK.00700"
    market: str  # "HK"
    qot_market: int  # QotMarket number, 1 for HK
    code: str  # "00700"
    capital_in_super: float
    capital_in_big: float
    capital_in_mid: float
    capital_in_small: float
    capital_out_super: float
    capital_out_big: float
    capital_out_mid: float
    capital_out_small: float
    update_time: str  # "yyyy-MM-dd HH:mm:ss", market local time
    update_timestamp: float  # epoch seconds

    @classmethod
    def from_s2c(cls, qot_market: int, code: str, s2c: capdist_pb.S2C) -> CapitalDistribution:
        """Build from the wire reply (super classes are optional on the wire: 0 if absent)."""
        security = from_wire(qot_market, code)
        return cls(
            security=security,
            market=parse_security(security).market,
            qot_market=qot_market,
            code=code,
            capital_in_super=s2c.capitalInSuper,
            capital_in_big=s2c.capitalInBig,
            capital_in_mid=s2c.capitalInMid,
            capital_in_small=s2c.capitalInSmall,
            capital_out_super=s2c.capitalOutSuper,
            capital_out_big=s2c.capitalOutBig,
            capital_out_mid=s2c.capitalOutMid,
            capital_out_small=s2c.capitalOutSmall,
            update_time=s2c.updateTime,
            update_timestamp=s2c.updateTimestamp,
        )

    def amounts(self) -> dict[str, float]:
        """The eight amounts by field name."""
        return {name: float(getattr(self, name)) for name in AMOUNT_FIELDS}

    @property
    def trading_day(self) -> str:
        """Market-local date of the update: updateTime's date, else from the timestamp."""
        if _DAY.match(self.update_time):
            return self.update_time[:10]
        tz = ZoneInfo(MARKET_TZ.get(self.market, "UTC"))
        return datetime.fromtimestamp(self.update_timestamp, tz).strftime("%Y-%m-%d")


def snapshot_to_proto(
    dist: CapitalDistribution, source: str, received_at_ms: int, poll_seq: int
) -> DistributionSnapshot:
    """The ``capflow.v1.DistributionSnapshot`` record for one reply."""
    return DistributionSnapshot(
        security=dist.security,
        market=dist.market,
        qot_market=dist.qot_market,
        code=dist.code,
        **dist.amounts(),
        update_time=dist.update_time,
        update_timestamp=dist.update_timestamp,
        trading_day=dist.trading_day,
        received_at_ms=received_at_ms,
        source=source,
        poll_seq=poll_seq,
    )


def snapshot_from_proto(msg: DistributionSnapshot) -> CapitalDistribution:
    """Back from the topic record (for consumers and tests)."""
    return CapitalDistribution(
        security=msg.security,
        market=msg.market,
        qot_market=msg.qot_market,
        code=msg.code,
        **{name: getattr(msg, name) for name in AMOUNT_FIELDS},
        update_time=msg.update_time,
        update_timestamp=msg.update_timestamp,
    )
