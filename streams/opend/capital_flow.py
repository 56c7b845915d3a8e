"""The typed result of Qot_GetCapitalFlow (3211), validated as it is read off the wire.

The simulator writes its answers with :func:`capital_flow_to_s2c`, the reverse.
What the client returns is a :class:`~streams.domain.capital_flow.CapitalFlow`; its rules
and its topic record live in streams.domain.capital_flow. Here only the wire's
optional fields are read: a row without one of its four class nets (or inFlow) is an
error, never zeros; a row's time or timestamp, and lastValidTime or its timestamp, may
each be absent and are then taken from the other in the market's time zone.
"""

from __future__ import annotations

import time

from streams.domain.capital_flow import (
    CapitalFlow,
    FlowRow,
    resolve_instant,
    series_day,
    validate_capital_flow,
)
from streams.domain.market import from_wire, parse_security
from streams.domain.validation import InvalidSnapshot
from streams.pb.opend import Qot_GetCapitalFlow_pb2 as capflow_pb

# Wire field -> FlowRow field; all but mainInFlow are required of a row.
_WIRE_VALUES: tuple[tuple[str, str], ...] = (
    ("inFlow", "in_flow"),
    ("superInFlow", "super_in_flow"),
    ("bigInFlow", "big_in_flow"),
    ("midInFlow", "mid_in_flow"),
    ("smlInFlow", "sml_in_flow"),
)


def capital_flow_from_s2c(
    qot_market: int, code: str, s2c: capflow_pb.S2C, now: float | None = None
) -> CapitalFlow:
    """Build the series of one reply and validate it; raises ``InvalidSnapshot``.

    ``now`` is the wall clock (default: time.time()): the day of the request when the
    series has no rows and no lastValidTime, and the bound "at most a day ahead".
    """
    security = from_wire(qot_market, code)
    market = parse_security(security).market
    now = time.time() if now is None else now
    rows = tuple(_row(market, security, i, item) for i, item in enumerate(s2c.flowItemList))
    last_valid: tuple[str, float] | None = None
    if s2c.HasField("lastValidTime") or s2c.HasField("lastValidTimestamp"):
        last_valid = resolve_instant(
            market,
            s2c.lastValidTime if s2c.HasField("lastValidTime") else None,
            s2c.lastValidTimestamp if s2c.HasField("lastValidTimestamp") else None,
            "lastValidTime",
            security,
        )
    cf = CapitalFlow(
        security=security,
        market=market,
        qot_market=qot_market,
        code=code,
        trading_day=series_day(market, rows, last_valid, now),
        rows=rows,
        last_valid_time=last_valid[0] if last_valid else "",
        last_valid_timestamp=last_valid[1] if last_valid else None,
    )
    validate_capital_flow(cf, now)
    return cf


def _row(market: str, security: str, index: int, item: capflow_pb.CapitalFlowItem) -> FlowRow:
    name = f"row {index} ({item.time})" if item.time else f"row {index}"
    missing = [wire for wire, _ in _WIRE_VALUES if not item.HasField(wire)]
    if missing:
        raise InvalidSnapshot(
            "missing", f"{name}: reply without {', '.join(missing)}", security, index
        )
    time_text, timestamp = resolve_instant(
        market,
        item.time if item.HasField("time") else None,
        item.timestamp if item.HasField("timestamp") else None,
        name,
        security,
        index,
    )
    return FlowRow(
        time=time_text,
        timestamp=timestamp,
        main_in_flow=item.mainInFlow if item.HasField("mainInFlow") else None,
        **{field: getattr(item, wire) for wire, field in _WIRE_VALUES},
    )


def capital_flow_to_s2c(cf: CapitalFlow, s2c: capflow_pb.S2C) -> None:
    """Write a series into a reply as OpenD does (the simulator answers with it)."""
    for row in cf.rows:
        item = s2c.flowItemList.add()
        item.inFlow = row.in_flow
        item.time = row.time
        item.timestamp = row.timestamp
        if row.main_in_flow is not None:
            item.mainInFlow = row.main_in_flow
        item.superInFlow = row.super_in_flow
        item.bigInFlow = row.big_in_flow
        item.midInFlow = row.mid_in_flow
        item.smlInFlow = row.sml_in_flow
    if cf.last_valid_time:
        s2c.lastValidTime = cf.last_valid_time
    if cf.last_valid_timestamp is not None:
        s2c.lastValidTimestamp = cf.last_valid_timestamp
