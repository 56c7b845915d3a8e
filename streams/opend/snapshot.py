"""The typed result of Qot_GetCapitalDistribution, validated as it is read off the wire.

:class:`CapitalDistribution` is what the client returns. The topic record it becomes
(``capflow.v1.DistributionSnapshot``) has its codec in streams.domain.snapshot_record;
``snapshot_to_proto`` is re-exported here for existing imports.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime

from streams.domain.market import (
    SecurityFormatError,
    from_wire,
    parse_local_time,
    parse_security,
    zone,
)
from streams.domain.snapshot_record import reading_fields, snapshot_to_proto
from streams.domain.validation import (
    AMOUNT_FIELDS,
    SUPER_AMOUNTS,
    InvalidSnapshot,
    check_timestamp,
    validate_snapshot,
)
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pb.opend import Qot_GetCapitalDistribution_pb2 as capdist_pb

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}")

# Fields a reply must carry (proto2 "required", plus updateTime which capflow needs).
# updateTimestamp is optional in the protocol (the official SDK does not read it for
# this query): when it is absent, it is taken from updateTime in the market's time zone.
_REQUIRED_WIRE: tuple[str, ...] = (
    "capitalInBig",
    "capitalInMid",
    "capitalInSmall",
    "capitalOutBig",
    "capitalOutMid",
    "capitalOutSmall",
    "updateTime",
)

__all__ = [
    "AMOUNT_FIELDS",
    "SUPER_AMOUNTS",
    "CapitalDistribution",
    "InvalidSnapshot",
    "snapshot_from_proto",
    "snapshot_to_proto",
]


@dataclass(frozen=True)
class CapitalDistribution:
    """One reply: cumulative amounts per order class since the session opened."""

    security: str  # "HK.00700"
    market: str  # "HK"
    qot_market: int  # QotMarket number, 1 for HK
    code: str  # "00700"
    capital_in_super: float | None  # None: absent on the wire (kept distinct from 0)
    capital_in_big: float
    capital_in_mid: float
    capital_in_small: float
    capital_out_super: float | None
    capital_out_big: float
    capital_out_mid: float
    capital_out_small: float
    update_time: str  # "yyyy-MM-dd HH:mm:ss", market local time
    update_timestamp: float  # epoch seconds

    @classmethod
    def from_s2c(
        cls, qot_market: int, code: str, s2c: capdist_pb.S2C, now: float | None = None
    ) -> CapitalDistribution:
        """Build from the wire reply and validate it; raises :class:`InvalidSnapshot`.

        A reply without the six classic amounts or updateTime is an error, never zeros;
        super amounts are optional on the wire and stay None when absent. ``now`` is the
        wall clock the timestamp is checked against (default: time.time()).
        """
        security = from_wire(qot_market, code)
        market = parse_security(security).market
        present = {field.name for field, _ in s2c.ListFields()}
        if not present:
            raise InvalidSnapshot("missing", "reply without s2c", security)
        missing = [name for name in _REQUIRED_WIRE if name not in present]
        if missing:
            raise InvalidSnapshot("missing", f"reply without {', '.join(missing)}", security)
        now = time.time() if now is None else now
        timestamp = _update_timestamp(security, market, s2c, now)
        dist = cls(
            security=security,
            market=market,
            qot_market=qot_market,
            code=code,
            capital_in_super=s2c.capitalInSuper if "capitalInSuper" in present else None,
            capital_in_big=s2c.capitalInBig,
            capital_in_mid=s2c.capitalInMid,
            capital_in_small=s2c.capitalInSmall,
            capital_out_super=s2c.capitalOutSuper if "capitalOutSuper" in present else None,
            capital_out_big=s2c.capitalOutBig,
            capital_out_mid=s2c.capitalOutMid,
            capital_out_small=s2c.capitalOutSmall,
            update_time=s2c.updateTime,
            update_timestamp=timestamp,
        )
        dist.validate(now)
        return dist

    def validate(self, now: float) -> None:
        """Raise :class:`InvalidSnapshot` unless this reply is valid data (see validation)."""
        validate_snapshot(
            security=self.security,
            market=self.market,
            trading_day=self.trading_day,
            update_timestamp=self.update_timestamp,
            amounts=self.amounts(),
            now=now,
        )

    def amounts(self) -> dict[str, float | None]:
        """The eight amounts by field name; None for a super amount absent on the wire."""
        out: dict[str, float | None] = {}
        for name in AMOUNT_FIELDS:
            value = getattr(self, name)
            out[name] = None if value is None else float(value)
        return out

    @property
    def trading_day(self) -> str:
        """Market-local date of the update: updateTime's date, else from the timestamp.

        Empty when neither gives a date (validation then rejects the snapshot).
        """
        if _DAY.match(self.update_time):
            return self.update_time[:10]
        try:
            tz = zone(self.market)
            return datetime.fromtimestamp(self.update_timestamp, tz).strftime("%Y-%m-%d")
        except (SecurityFormatError, ValueError, OverflowError, OSError):
            return ""


def _update_timestamp(security: str, market: str, s2c: capdist_pb.S2C, now: float) -> float:
    """updateTimestamp, checked, or from updateTime when OpenD left it out."""
    has_timestamp = s2c.HasField("updateTimestamp")
    if has_timestamp:
        check_timestamp(s2c.updateTimestamp, now, security)
    try:
        local = parse_local_time(market, s2c.updateTime)
    except ValueError as exc:
        raise InvalidSnapshot("timestamp", f"updateTime {exc}", security) from None
    if has_timestamp:
        return float(s2c.updateTimestamp)
    check_timestamp(local, now, security)
    return local


def snapshot_from_proto(msg: DistributionSnapshot) -> CapitalDistribution:
    """Back from the topic record (for consumers and tests)."""
    return CapitalDistribution(**reading_fields(msg))
