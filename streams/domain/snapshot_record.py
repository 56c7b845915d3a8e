"""The one codec of capflow's snapshot record, ``capflow.v1.DistributionSnapshot``.

The poller writes the record from an OpenD reply, the flow processor, ``capflow
record``/``replay`` and consumers read it back; all of them go through these
functions, so the field mapping (and "an unset super amount is absent, not 0", and
"a record without a currency is in its market's") lives in one place. The OpenD
adapter only has to offer a :class:`Reading`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from streams.domain.market import currency_of, market_currency
from streams.domain.validation import AMOUNT_FIELDS, SUPER_AMOUNTS
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot


class Reading(Protocol):
    """What a snapshot record is made from: one reply of the capital distribution query."""

    @property
    def security(self) -> str: ...

    @property
    def market(self) -> str: ...

    @property
    def qot_market(self) -> int: ...

    @property
    def code(self) -> str: ...

    @property
    def update_time(self) -> str: ...

    @property
    def update_timestamp(self) -> float: ...

    @property
    def trading_day(self) -> str: ...

    def amounts(self) -> Mapping[str, float | None]: ...


def snapshot_to_proto(
    reading: Reading,
    source: str,
    received_at_ms: int,
    poll_seq: int,
    capital_flow_ref_ms: int = 0,
) -> DistributionSnapshot:
    """The record for one reply, plus trading day, receive time, source and currency, and
    the capital-flow series polled before it (``capital_flow_ref_ms``, 0: none).

    An absent (None) super amount is left unset, so it stays distinct from 0.
    """
    msg = DistributionSnapshot(
        security=reading.security,
        market=reading.market,
        qot_market=reading.qot_market,
        code=reading.code,
        update_time=reading.update_time,
        update_timestamp=reading.update_timestamp,
        trading_day=reading.trading_day,
        received_at_ms=received_at_ms,
        source=source,
        poll_seq=poll_seq,
        capital_flow_ref_ms=capital_flow_ref_ms,
        currency=currency_of(reading.market),
    )
    for name, value in reading.amounts().items():
        if value is not None:
            setattr(msg, name, value)
    return msg


def record_currency(msg: DistributionSnapshot) -> str | None:
    """The currency of a record's amounts: its own, else (an older record) its market's.

    None only for a record whose market is unknown.
    """
    return msg.currency or market_currency(msg.market, msg.security)


def record_amounts(msg: DistributionSnapshot) -> dict[str, float | None]:
    """The eight amounts of a record by field name; None for an unset super amount."""
    return {
        name: None if name in SUPER_AMOUNTS and not msg.HasField(name) else getattr(msg, name)
        for name in AMOUNT_FIELDS
    }


def reading_fields(msg: DistributionSnapshot) -> dict[str, Any]:
    """The reply's own fields of a record (what OpenD sent), as keyword arguments."""
    return {
        "security": msg.security,
        "market": msg.market,
        "qot_market": msg.qot_market,
        "code": msg.code,
        **record_amounts(msg),
        "update_time": msg.update_time,
        "update_timestamp": msg.update_timestamp,
    }


# Every field of the record (protobuf FieldDescriptors), in the order of the .proto.
RECORD_FIELDS: tuple[Any, ...] = tuple(DistributionSnapshot.DESCRIPTOR.fields)
_FIELD_NAMES: frozenset[str] = frozenset(f.name for f in RECORD_FIELDS)


def record_fields(msg: DistributionSnapshot) -> dict[str, Any]:
    """Every field of a record by name, in field order; None for an unset optional one.

    Tabular copies of the topic (the Parquet archive) store these; a field added to
    the .proto is one more key here without a change to this function.
    """
    return {
        f.name: None if f.has_presence and not msg.HasField(f.name) else getattr(msg, f.name)
        for f in RECORD_FIELDS
    }


def record_from_fields(fields: Mapping[str, Any]) -> DistributionSnapshot:
    """The record of :func:`record_fields`' dict: None stays unset, unknown keys are ignored
    (a table written by a newer release may carry fields this one does not know)."""
    known = {k: v for k, v in fields.items() if v is not None and k in _FIELD_NAMES}
    return DistributionSnapshot(**known)
