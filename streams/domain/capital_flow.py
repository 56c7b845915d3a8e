"""A capital-flow series (Qot_GetCapitalFlow, protocol 3211): types, validity, topic record.

OpenD answers one security's day as rows, one per trading minute since the open, each
the cumulative net inflow (in - out) per order class at that minute: a minute's own
flow is the difference to the row before, the open row is zeros, and the last row may
be the minute in progress, labelled with the next minute mark and carrying the values
as of ``lastValidTime`` (capital distribution's updateTime at that instant). Values are
OpenD's, passed through as sent: ``inFlow`` is never recomputed from the classes, and
nets may be negative.

The OpenD client builds a :class:`CapitalFlow` from the wire (streams.opend.capital_flow)
and the flow processor reads the topic record back (:func:`capital_flow_from_proto`);
both validate here, so a series that breaks a rule is an
:class:`~streams.domain.validation.InvalidSnapshot` naming the rule and the row on
every path, never data. No I/O: the wall clock comes in as ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from streams.domain.market import MARKET_TZ, format_local_time, parse_local_time
from streams.domain.validation import (
    EARLIEST_TIMESTAMP,
    MAX_AHEAD_S,
    InvalidSnapshot,
    check_security,
    day_bounds,
)
from streams.pb.capflow.v1.capital_flow_pb2 import CapitalFlowRow, CapitalFlowSeries

PERIOD_INTRADAY = 1  # Qot_Common.PeriodType_INTRADAY: today's session, one row per minute
# The four class nets of a row by field name; super + big is capital distribution's L.
FLOW_CLASSES: tuple[str, ...] = ("super_in_flow", "big_in_flow", "mid_in_flow", "sml_in_flow")
# A row's time and timestamp name the same second (OpenD's timestamps are whole seconds).
_SAME_INSTANT_S = 1.0


@dataclass(frozen=True)
class FlowRow:
    """One minute: cumulative net inflow since the open per class, at ``time``."""

    time: str  # "yyyy-MM-dd HH:mm:ss", market local: the minute mark
    timestamp: float  # the same instant, epoch seconds
    in_flow: float  # OpenD's inFlow: net of all classes, as sent
    super_in_flow: float
    big_in_flow: float
    mid_in_flow: float
    sml_in_flow: float
    main_in_flow: float | None = None  # OpenD's mainInFlow (DAY/WEEK/MONTH); None: not sent

    @property
    def large_net(self) -> float:
        """L at this minute: super + big, as capital distribution's large net."""
        return self.super_in_flow + self.big_in_flow


@dataclass(frozen=True)
class CapitalFlow:
    """One security's intraday series as OpenD answered it (rows strictly increasing)."""

    security: str  # "HK.00700"
    market: str  # "HK"
    qot_market: int  # QotMarket number, 1 for HK
    code: str  # "00700"
    trading_day: str  # market-local date of the rows (of lastValidTime when there are none)
    rows: tuple[FlowRow, ...]
    last_valid_time: str  # "yyyy-MM-dd HH:mm:ss", market local; "" when OpenD sent none
    last_valid_timestamp: float | None  # epoch seconds; None when OpenD sent none

    @property
    def partial_row(self) -> FlowRow | None:
        """The last row when it is the minute in progress (labelled after lastValidTime)."""
        if self.rows and self.last_valid_timestamp is not None:
            last = self.rows[-1]
            if last.timestamp > self.last_valid_timestamp:
                return last
        return None

    @property
    def complete_rows(self) -> tuple[FlowRow, ...]:
        """The rows of minutes that are over (all rows when OpenD sent no lastValidTime)."""
        return self.rows[:-1] if self.partial_row is not None else self.rows

    def large_net_levels(self) -> list[tuple[float, float]]:
        """(instant, L) of every row: a minute that is over at its mark, the minute in
        progress at lastValidTime, the instant its values belong to."""
        partial = self.partial_row
        last = self.last_valid_timestamp
        return [
            (last if row is partial and last is not None else row.timestamp, row.large_net)
            for row in self.rows
        ]

    def validate(self, now: float | None = None) -> None:
        """Raise :class:`InvalidSnapshot` unless this series is valid data."""
        validate_capital_flow(self, now)


# -- validity ---------------------------------------------------------------------------


def validate_capital_flow(cf: CapitalFlow, now: float | None = None) -> None:
    """Raise :class:`InvalidSnapshot` unless every rule holds.

    The security names its market; the trading day is a real date after 2000 and (given
    the wall clock ``now``) at most a day ahead; every row has its four class nets and
    inFlow as finite numbers, a time that parses and names the same instant as its
    timestamp in the market's zone, on the trading day, each minute after the one
    before; lastValidTime, when sent, likewise lies on the trading day. No rows is
    valid (before the open).
    """
    security = cf.security
    check_security(security, cf.market)
    start, end = day_bounds(cf.trading_day, cf.market, security)
    if end <= EARLIEST_TIMESTAMP:
        raise InvalidSnapshot(
            "trading_day", f"trading_day {cf.trading_day} is before 2000", security
        )
    if now is not None and start > now + MAX_AHEAD_S:
        raise InvalidSnapshot(
            "trading_day",
            f"trading_day {cf.trading_day} is more than a day ahead of the clock ({now:.0f})",
            security,
        )
    previous: FlowRow | None = None
    for index, row in enumerate(cf.rows):
        _check_row(cf, index, row, (start, end))
        if previous is not None and row.timestamp <= previous.timestamp:
            how = "repeats" if row.timestamp == previous.timestamp else "comes before"
            raise InvalidSnapshot(
                "order",
                f"{_row_name(index, row)} {how} the minute of row {index - 1} "
                f"({previous.time}): minutes out of order or repeated",
                security,
                index,
            )
        previous = row
    _check_last_valid(cf, (start, end))


def _row_name(index: int, row: FlowRow) -> str:
    return f"row {index} ({row.time})" if row.time else f"row {index}"


def _check_row(cf: CapitalFlow, index: int, row: FlowRow, day: tuple[float, float]) -> None:
    name = _row_name(index, row)
    for field in ("in_flow", *FLOW_CLASSES, "main_in_flow"):
        value = getattr(row, field)
        if value is None:
            if field == "main_in_flow":
                continue  # absent on the wire: allowed (INTRADAY never sends it)
            raise InvalidSnapshot("missing", f"{name}: {field} is missing", cf.security, index)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidSnapshot(
                "amount", f"{name}: {field} must be a number, got {value!r}", cf.security, index
            )
        if not math.isfinite(value):
            raise InvalidSnapshot(
                "amount", f"{name}: {field} must be finite, got {value!r}", cf.security, index
            )
    _check_instant(cf, "timestamp", name, row.time, row.timestamp, day, index)


def _check_last_valid(cf: CapitalFlow, day: tuple[float, float]) -> None:
    if not cf.last_valid_time and cf.last_valid_timestamp is None:
        return  # OpenD sent none
    _check_instant(
        cf, "last_valid_time", "lastValidTime", cf.last_valid_time, cf.last_valid_timestamp, day
    )


def _check_instant(
    cf: CapitalFlow,
    rule: str,
    name: str,
    text: str,
    timestamp: float | None,
    day: tuple[float, float],
    index: int | None = None,
) -> None:
    """``text`` parses in the market's zone, names ``timestamp`` and lies on the day."""
    security = cf.security
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise InvalidSnapshot(
            rule, f"{name}: timestamp is not a number: {timestamp!r}", security, index
        )
    if not math.isfinite(timestamp):
        raise InvalidSnapshot(
            rule, f"{name}: timestamp {timestamp!r} is not finite", security, index
        )
    try:
        local = parse_local_time(cf.market, text)
    except ValueError as exc:
        raise InvalidSnapshot(rule, f"{name}: time {exc}", security, index) from None
    if abs(local - timestamp) >= _SAME_INSTANT_S:
        raise InvalidSnapshot(
            rule,
            f"{name}: time {text} and timestamp {timestamp:.0f} "
            f"({_local_or_raw(cf.market, timestamp)}) disagree in {MARKET_TZ[cf.market]}",
            security,
            index,
        )
    start, end = day
    if not start <= timestamp < end:
        raise InvalidSnapshot(
            "trading_day" if rule == "timestamp" else rule,
            f"{name}: {text} is not on the trading day {cf.trading_day}",
            security,
            index,
        )


def _local_or_raw(market: str, timestamp: float) -> str:
    try:
        return format_local_time(market, timestamp)
    except (ValueError, OverflowError, OSError):
        return "no time"


def resolve_instant(
    market: str,
    text: str | None,
    timestamp: float | None,
    name: str,
    security: str = "",
    index: int | None = None,
) -> tuple[str, float]:
    """(time, timestamp) of a row or of lastValidTime, the absent one from the other.

    Either may be absent on the wire (None, or "" for the text): the timestamp comes
    from the time in the market's time zone and vice versa; both absent, or the one
    present unusable, is an :class:`InvalidSnapshot` naming ``name``.
    """
    rule = "last_valid_time" if index is None else "timestamp"
    if text and timestamp is not None:
        return text, float(timestamp)
    if text:
        try:
            return text, parse_local_time(market, text)
        except ValueError as exc:
            raise InvalidSnapshot(rule, f"{name}: time {exc}", security, index) from None
    if timestamp is None:
        raise InvalidSnapshot("missing", f"{name}: neither time nor timestamp", security, index)
    try:
        return format_local_time(market, timestamp), float(timestamp)
    except (ValueError, OverflowError, OSError):
        raise InvalidSnapshot(
            rule, f"{name}: timestamp {timestamp!r} is not a time", security, index
        ) from None


def series_day(
    market: str, rows: tuple[FlowRow, ...], last_valid: tuple[str, float] | None, today: float
) -> str:
    """The trading day of a series: its first row's local date, else lastValidTime's, else
    the date of ``today`` (epoch seconds: the day of the request) in the market's zone."""
    if rows:
        return _date_of(market, rows[0].time, rows[0].timestamp)
    if last_valid is not None:
        return _date_of(market, *last_valid)
    return format_local_time(market, today)[:10]


def _date_of(market: str, text: str, timestamp: float) -> str:
    """The local date of an instant; its text's date when the timestamp is no time
    (validation then says what is wrong with it)."""
    try:
        return format_local_time(market, timestamp)[:10]
    except (ValueError, OverflowError, OSError):
        return text[:10]


# -- the topic record (capflow.v1.CapitalFlowSeries) ------------------------------------


def capital_flow_to_proto(
    cf: CapitalFlow,
    source: str,
    received_at_ms: int,
    poll_seq: int,
    period_type: int = PERIOD_INTRADAY,
) -> CapitalFlowSeries:
    """The record of one series, plus where and when it was read.

    An absent mainInFlow stays unset (distinct from 0); no lastValidTimestamp is 0.
    """
    return CapitalFlowSeries(
        security=cf.security,
        market=cf.market,
        qot_market=cf.qot_market,
        code=cf.code,
        trading_day=cf.trading_day,
        rows=[
            CapitalFlowRow(
                time=row.time,
                timestamp=row.timestamp,
                in_flow=row.in_flow,
                main_in_flow=row.main_in_flow,
                super_in_flow=row.super_in_flow,
                big_in_flow=row.big_in_flow,
                mid_in_flow=row.mid_in_flow,
                sml_in_flow=row.sml_in_flow,
            )
            for row in cf.rows
        ],
        last_valid_time=cf.last_valid_time,
        last_valid_timestamp=cf.last_valid_timestamp or 0.0,
        received_at_ms=received_at_ms,
        source=source,
        poll_seq=poll_seq,
        period_type=period_type,
    )


def capital_flow_from_proto(msg: CapitalFlowSeries, now: float | None = None) -> CapitalFlow:
    """The series of a record, validated (:class:`InvalidSnapshot` when it is not valid).

    ``now`` (the wall clock) also rejects a day more than a day ahead; None skips that.
    """
    security = msg.security
    check_security(security, msg.market)
    if msg.period_type not in (0, PERIOD_INTRADAY):
        raise InvalidSnapshot(
            "period_type",
            f"period_type {msg.period_type}: only intraday series (1) are minute histories",
            security,
        )
    rows = tuple(_row_from_record(msg.market, security, i, r) for i, r in enumerate(msg.rows))
    last_time, last_ts = "", None
    if msg.last_valid_time or msg.last_valid_timestamp:
        last_time, last_ts = resolve_instant(
            msg.market,
            msg.last_valid_time,
            msg.last_valid_timestamp or None,
            "lastValidTime",
            security,
        )
    cf = CapitalFlow(
        security=security,
        market=msg.market,
        qot_market=msg.qot_market,
        code=msg.code,
        trading_day=msg.trading_day,
        rows=rows,
        last_valid_time=last_time,
        last_valid_timestamp=last_ts,
    )
    validate_capital_flow(cf, now)
    return cf


def _row_from_record(market: str, security: str, index: int, row: CapitalFlowRow) -> FlowRow:
    time, timestamp = resolve_instant(
        market, row.time, row.timestamp or None, f"row {index}", security, index
    )
    return FlowRow(
        time=time,
        timestamp=timestamp,
        in_flow=row.in_flow,
        super_in_flow=row.super_in_flow,
        big_in_flow=row.big_in_flow,
        mid_in_flow=row.mid_in_flow,
        sml_in_flow=row.sml_in_flow,
        main_in_flow=row.main_in_flow if row.HasField("main_in_flow") else None,
    )
