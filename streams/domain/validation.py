"""One validation of a capital-distribution snapshot, for every path that takes one in.

The OpenD client checks each reply with it (an invalid reply is an error, never data),
the flow processor checks each record (an invalid record is a dead letter with the
reason), so nothing that fails it reaches a table. One bad value must not poison a
security: a far-future timestamp accepted once would make every later snapshot
"stale", a negative amount would look like a correction. The rules are the user
documentation's "valid snapshots" (docs/definitions.md). A capital-flow series (3211)
is checked with the same error and the same day and security rules, plus its own
(streams.domain.capital_flow).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from streams.domain.amounts import AMOUNT_NAMES
from streams.domain.market import MARKET_TZ, SecurityFormatError, market_of, zone

# The eight amounts by their record field names (capital_<name> of streams.domain.amounts'
# AMOUNT_NAMES, in that order); super is optional on the OpenD wire.
AMOUNT_FIELDS: tuple[str, ...] = tuple(f"capital_{name}" for name in AMOUNT_NAMES)
SUPER_AMOUNTS: tuple[str, ...] = tuple(f for f in AMOUNT_FIELDS if f.endswith("_super"))
CLASSIC_AMOUNTS: tuple[str, ...] = tuple(f for f in AMOUNT_FIELDS if f not in SUPER_AMOUNTS)

EARLIEST_TIMESTAMP = 946_684_800.0  # 2000-01-01T00:00:00Z: nothing older is OpenD data
MAX_AHEAD_S = 86_400.0  # a clock may be off, but not by more than a day

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_FLOAT = sys.float_info.max


class InvalidSnapshot(ValueError):
    """A snapshot that breaks a validity rule; ``rule`` names the rule, ``detail`` says how.

    ``rule`` is one of "missing", "security", "amount", "timestamp", "trading_day"; a
    capital-flow series (streams.domain.capital_flow) adds "order", "last_valid_time"
    and "period_type": a short stable key, so callers can count and log a failure once
    per kind. ``row`` is the index of the series row at fault, None for the whole.
    """

    def __init__(self, rule: str, detail: str, security: str = "", row: int | None = None) -> None:
        self.rule = rule
        self.detail = detail
        self.security = security
        self.row = row
        super().__init__(f"{security}: {detail}" if security else detail)


def check_amounts(amounts: Mapping[str, float | None], security: str = "") -> None:
    """The eight amounts: classic ones present, every present one a finite number >= 0."""
    total = 0.0
    for name in AMOUNT_FIELDS:
        value = amounts.get(name)
        if type(value) is float and 0.0 <= value <= _MAX_FLOAT:
            total += value  # the common case, checked first (NaN fails the comparison)
            continue
        if value is None:
            if name in SUPER_AMOUNTS:
                continue  # absent on the wire: allowed, and kept distinct from 0
            raise InvalidSnapshot("missing", f"{name} is missing", security)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidSnapshot("amount", f"{name} must be a number, got {value!r}", security)
        if not math.isfinite(value):
            raise InvalidSnapshot("amount", f"{name} must be finite, got {value!r}", security)
        if value < 0:
            raise InvalidSnapshot("amount", f"{name} must be >= 0, got {value!r}", security)
        total += value
    if not math.isfinite(total):  # turnover T is their sum
        raise InvalidSnapshot("amount", "the sum of the amounts is not finite", security)


def check_timestamp(update_timestamp: float, now: float, security: str = "") -> None:
    """updateTimestamp in epoch seconds, after 2000 and at most a day ahead of ``now``."""
    ts = update_timestamp
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise InvalidSnapshot("timestamp", f"updateTimestamp is not a number: {ts!r}", security)
    if ts <= EARLIEST_TIMESTAMP:
        raise InvalidSnapshot(
            "timestamp", f"updateTimestamp {ts!r} is not after 2000-01-01 (missing?)", security
        )
    if ts > now + MAX_AHEAD_S:
        raise InvalidSnapshot(
            "timestamp",
            f"updateTimestamp {ts!r} is more than a day ahead of the clock ({now:.0f}); "
            "milliseconds instead of seconds?",
            security,
        )


def market_date(market: str, update_timestamp: float) -> date:
    """The market-local date of a (plausible) timestamp."""
    return datetime.fromtimestamp(update_timestamp, zone(market)).date()


@lru_cache(maxsize=4096)
def _local_day(market: str, trading_day: str) -> tuple[float, float]:
    """[start, end) in epoch seconds of a market-local day; ValueError if it is no date.

    Cached: every snapshot of a market on a day asks the same question.
    """
    day = date.fromisoformat(trading_day)
    tz = zone(market)
    start = datetime.combine(day, time(), tz).timestamp()
    end = datetime.combine(day + timedelta(days=1), time(), tz).timestamp()
    return start, end


def day_bounds(trading_day: str, market: str, security: str = "") -> tuple[float, float]:
    """[start, end) in epoch seconds of a real "yyyy-MM-dd" day in the market's time zone.

    Raises :class:`InvalidSnapshot` ("trading_day") when the text is no such date.
    """
    if not isinstance(trading_day, str) or not _DAY.match(trading_day):
        raise InvalidSnapshot(
            "trading_day", f"trading_day must be yyyy-MM-dd, got {trading_day!r}", security
        )
    try:
        return _local_day(market, trading_day)
    except (ValueError, OverflowError):
        raise InvalidSnapshot(
            "trading_day", f"trading_day {trading_day!r} is not a real date", security
        ) from None


def check_trading_day(
    trading_day: str, update_timestamp: float, market: str, security: str = ""
) -> None:
    """A real "yyyy-MM-dd" date equal to updateTimestamp's date in the market's time zone."""
    start, end = day_bounds(trading_day, market, security)
    if not start <= update_timestamp < end:
        local = market_date(market, update_timestamp)
        raise InvalidSnapshot(
            "trading_day",
            f"trading_day {trading_day} does not match updateTimestamp {update_timestamp:.0f} "
            f"({local.isoformat()} in {MARKET_TZ[market]})",
            security,
        )


def check_security(security: str, market: str) -> None:
    """A known "MARKET.CODE" whose market prefix is ``market``."""
    try:
        parsed = market_of(security)
    except SecurityFormatError as exc:
        raise InvalidSnapshot("security", str(exc)) from None
    if market != parsed:
        raise InvalidSnapshot("security", f"market {market!r} does not match {parsed!r}", security)


def validate_snapshot(
    *,
    security: str,
    market: str,
    trading_day: str,
    update_timestamp: float,
    amounts: Mapping[str, float | None],
    now: float,
) -> None:
    """Raise :class:`InvalidSnapshot` unless the snapshot satisfies every validity rule.

    ``amounts`` maps the record field names (``capital_in_big`` ...) to values, None
    for an amount absent on the wire; ``now`` is the wall clock (epoch seconds).
    """
    check_security(security, market)
    check_amounts(amounts, security)
    check_timestamp(update_timestamp, now, security)
    check_trading_day(trading_day, update_timestamp, market, security)
