"""The market table: one source for codes, wire numbers, time zones and hours."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain import market
from streams.domain.market import (
    MARKET_TABLE,
    MARKET_TZ,
    MARKETS,
    SESSIONS,
    SecurityFormatError,
    currency_of,
    market_currency,
    market_of,
    market_zone,
    may_be_open,
    parse_market,
    parse_security,
)
from streams.sinks import console

# Tuesday 2026-11-24 10:00 in Hong Kong, 21:00 (closed) in New York the evening before.
HK_MORNING = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Asia/Hong_Kong")).timestamp()


def test_views_are_the_table() -> None:
    assert list(MARKETS) == list(MARKET_TABLE) == list(MARKET_TZ)
    assert len(set(MARKETS.values())) == len(MARKETS)  # wire numbers are unique
    for prefix, m in MARKET_TABLE.items():
        assert m.prefix == prefix and MARKETS[prefix] == m.qot_market
        ZoneInfo(m.tz)  # every zone exists
        assert all(0 <= o < c <= 86_400 for o, c in m.sessions)
    assert set(SESSIONS) == {"HK", "US", "SH", "SZ"}


def test_every_market_names_the_currency_of_its_amounts() -> None:
    currencies = {prefix: m.currency for prefix, m in MARKET_TABLE.items()}
    assert currencies == {
        "HK": "HKD", "US": "USD", "SH": "CNY", "SZ": "CNY", "SG": "SGD",
        "JP": "JPY", "AU": "AUD", "MY": "MYR", "CA": "CAD",
    }  # fmt: skip
    for prefix, currency in currencies.items():
        assert currency_of(prefix) == currency
        assert market_currency(prefix.lower()) == market_currency(None, f"{prefix}.X1") == currency
    with pytest.raises(KeyError):
        currency_of("XX")
    # Readers of records never fail on what a record holds.
    for market_name, sec in (("XX", None), (None, "XX.1"), (None, "HK.00 700"), (None, None)):
        assert market_currency(market_name, sec) is None
    assert market_currency("US", "HK.00700") == "USD"  # the market given wins


def test_markets_have_one_import_path() -> None:
    """Everything about markets comes from streams.domain.market: no re-exporting module."""
    root = Path(__file__).resolve().parents[2] / "streams"
    for gone in ("opend/security.py", "opend/hours.py"):
        assert not (root / gone).exists(), gone
    # The console shows times in the zone the trading day is computed in.
    assert console.market_zone is market_zone


@pytest.mark.parametrize("prefix", list(MARKET_TABLE))
def test_every_market_parses_and_has_a_zone(prefix: str) -> None:
    assert market_of(f"{prefix.lower()}.X1") == prefix == parse_market(f" {prefix.lower()}")
    zone = market_zone(None, f"{prefix}.X1")
    assert zone is not None and zone.key == MARKET_TZ[prefix]
    assert market_zone(prefix.lower()) == zone


@pytest.mark.parametrize("market_name", ["CN", "XX", "", "HK.00700"])
def test_unknown_markets_are_rejected(market_name: str) -> None:
    with pytest.raises(SecurityFormatError, match="unknown market"):
        parse_market(market_name)
    assert market_zone(market_name) is None


def test_zone_for_unparsable_security_is_unknown() -> None:
    assert market_zone(None, "XX.00700") is None
    assert market_zone(None, "HK.00 700") is None
    assert market_zone(None, None) is None
    # A market given explicitly wins over the security.
    zone = market_zone("US", "HK.00700")
    assert zone is not None and zone.key == "America/New_York"


def test_may_be_open() -> None:
    assert may_be_open("HK.00700", HK_MORNING)
    assert not may_be_open("US.AAPL", HK_MORNING)
    assert may_be_open("SG.D05", HK_MORNING)  # hours unknown: poll
    # Unparsable: poll, so OpenD's answer (or the client) names the problem.
    assert may_be_open("XX.00700", HK_MORNING) and may_be_open("00700", HK_MORNING)


@given(st.text(max_size=12))
def test_market_of_agrees_with_the_parser(text: str) -> None:
    try:
        expected = parse_security(text).market
    except SecurityFormatError:
        with pytest.raises(SecurityFormatError):
            market_of(text)
    else:
        assert market_of(text) == expected


def test_one_zone_per_market_and_one_failure() -> None:
    """``zone`` is every market's zone, made once; an unknown market is the parser's error."""
    assert market.zone("HK") is market.zone("HK") == ZoneInfo("Asia/Hong_Kong")
    with pytest.raises(SecurityFormatError, match="unknown market 'XX'"):
        market.zone("XX")
    assert market_zone("XX") is None  # readers of records: never raises
