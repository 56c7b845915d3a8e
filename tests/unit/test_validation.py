"""Snapshot validation: the rules, and the OpenD reply path (CapitalDistribution.from_s2c)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.validation import (
    AMOUNT_FIELDS,
    InvalidSnapshot,
    check_amounts,
    validate_snapshot,
)
from streams.opend.snapshot import CapitalDistribution, snapshot_from_proto, snapshot_to_proto
from streams.pb.opend import Qot_GetCapitalDistribution_pb2 as capdist_pb

NOW = 1_717_400_000.0  # 2024-06-03T07:33:20Z
T0 = 1_717_378_200.0  # 2024-06-03 09:30:00 HKT
GOOD_AMOUNTS: dict[str, float | None] = {name: 100.0 for name in AMOUNT_FIELDS}


def check(**overrides: Any) -> None:
    fields: dict[str, Any] = {
        "security": "HK.00700",
        "market": "HK",
        "trading_day": "2024-06-03",
        "update_timestamp": T0,
        "amounts": GOOD_AMOUNTS,
        "now": NOW,
    }
    fields.update(overrides)
    validate_snapshot(**fields)


def rule_of(**overrides: Any) -> str:
    with pytest.raises(InvalidSnapshot) as info:
        check(**overrides)
    assert str(info.value)  # a readable reason
    return info.value.rule


def test_a_good_snapshot_passes() -> None:
    check()
    check(amounts={**GOOD_AMOUNTS, "capital_in_super": None, "capital_out_super": None})
    check(amounts={name: 0.0 for name in AMOUNT_FIELDS})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), -1.0, -1e-9, "1", True])
@pytest.mark.parametrize("name", AMOUNT_FIELDS)
def test_each_amount_must_be_a_finite_number_not_below_zero(name: str, bad: Any) -> None:
    assert rule_of(amounts={**GOOD_AMOUNTS, name: bad}) == "amount"


@pytest.mark.parametrize("name", [n for n in AMOUNT_FIELDS if "super" not in n])
def test_classic_amounts_are_required(name: str) -> None:
    assert rule_of(amounts={**GOOD_AMOUNTS, name: None}) == "missing"


def test_amounts_whose_sum_overflows_are_rejected() -> None:
    assert rule_of(amounts={name: 1e308 for name in AMOUNT_FIELDS}) == "amount"


@pytest.mark.parametrize(
    "ts",
    [
        0.0,
        946_684_800.0,  # exactly 2000-01-01T00:00:00Z is not after it
        T0 * 1000,  # milliseconds
        1e20,
        4_102_444_800.0,  # 2100-01-01
        NOW + 86_400.0 + 1,
        float("nan"),
        float("inf"),
    ],
)
def test_timestamp_after_2000_and_at_most_a_day_ahead(ts: float) -> None:
    assert rule_of(update_timestamp=ts) == "timestamp"


def test_timestamp_up_to_a_day_ahead_is_accepted() -> None:
    ahead = NOW + 86_400.0
    check(update_timestamp=ahead, trading_day="2024-06-04")


@pytest.mark.parametrize(
    "day", ["", "9999-99-99", "2024-02-30", "2024/06/03", "2024-06-03 ", "2100-01-01", "2024-06-02"]
)
def test_trading_day_must_be_the_real_local_date_of_the_timestamp(day: str) -> None:
    assert rule_of(trading_day=day) == "trading_day"


def test_trading_day_is_taken_in_the_market_time_zone() -> None:
    # 2024-06-03T01:30Z is still June 2nd in New York.
    check(security="US.AAPL", market="US", trading_day="2024-06-02")
    assert rule_of(security="US.AAPL", market="US", trading_day="2024-06-03") == "trading_day"


@pytest.mark.parametrize(("security", "market"), [("", "HK"), ("XX.1", "XX"), ("HK.00700", "US")])
def test_security_and_market_must_agree(security: str, market: str) -> None:
    assert rule_of(security=security, market=market) == "security"


@given(st.dictionaries(st.sampled_from(AMOUNT_FIELDS), st.floats(allow_nan=True)))
def test_check_amounts_accepts_exactly_finite_non_negative_classic_sets(
    values: dict[str, float],
) -> None:
    amounts: dict[str, float | None] = {**GOOD_AMOUNTS, **values}
    ok = all(v is not None and 0 <= v < float("inf") for v in amounts.values())
    try:
        check_amounts(amounts)
    except InvalidSnapshot:
        assert not ok or sum(v or 0.0 for v in amounts.values()) == float("inf")
    else:
        assert ok


# -- the OpenD reply -----------------------------------------------------------------


def reply(**fields: Any) -> capdist_pb.S2C:
    base: dict[str, Any] = {
        "capitalInSuper": 5.0,
        "capitalInBig": 10.0,
        "capitalInMid": 20.0,
        "capitalInSmall": 30.0,
        "capitalOutSuper": 4.0,
        "capitalOutBig": 9.0,
        "capitalOutMid": 19.0,
        "capitalOutSmall": 29.0,
        "updateTime": "2024-06-03 09:30:00",
        "updateTimestamp": T0,
    }
    base.update(fields)
    return capdist_pb.S2C(**{k: v for k, v in base.items() if v is not None})


def test_a_valid_reply_is_read() -> None:
    dist = CapitalDistribution.from_s2c(1, "00700", reply(), now=NOW)
    assert dist.security == "HK.00700" and dist.trading_day == "2024-06-03"
    assert dist.capital_in_super == 5.0 and dist.capital_out_small == 29.0


def test_absent_super_amounts_stay_absent_through_the_record() -> None:
    dist = CapitalDistribution.from_s2c(
        1, "00700", reply(capitalInSuper=None, capitalOutSuper=None), now=NOW
    )
    assert dist.capital_in_super is None and dist.capital_out_super is None
    record = snapshot_to_proto(dist, "test", 1, 1)
    assert not record.HasField("capital_in_super")
    back = type(record).FromString(record.SerializeToString())
    assert snapshot_from_proto(back) == dist


def test_a_zero_super_amount_is_not_absent() -> None:
    dist = CapitalDistribution.from_s2c(1, "00700", reply(capitalInSuper=0.0), now=NOW)
    record = type(snapshot_to_proto(dist, "t", 1, 1)).FromString(
        snapshot_to_proto(dist, "t", 1, 1).SerializeToString()
    )
    assert record.HasField("capital_in_super") and record.capital_in_super == 0.0
    assert snapshot_from_proto(record).capital_in_super == 0.0


def test_an_empty_reply_is_an_error_not_zeros() -> None:
    with pytest.raises(InvalidSnapshot, match="without s2c") as info:
        CapitalDistribution.from_s2c(1, "00700", capdist_pb.S2C(), now=NOW)
    assert info.value.rule == "missing"


@pytest.mark.parametrize(
    "name",
    [
        "capitalInBig",
        "capitalInMid",
        "capitalInSmall",
        "capitalOutBig",
        "capitalOutMid",
        "capitalOutSmall",
        "updateTime",
    ],
)
def test_a_reply_without_a_required_field_is_an_error(name: str) -> None:
    with pytest.raises(InvalidSnapshot, match=name):
        CapitalDistribution.from_s2c(1, "00700", reply(**{name: None}), now=NOW)


def test_a_reply_without_update_timestamp_takes_it_from_update_time() -> None:
    # Optional in the protocol; the official SDK reads only updateTime for this query.
    dist = CapitalDistribution.from_s2c(1, "00700", reply(updateTimestamp=None), now=NOW)
    assert dist.update_timestamp == T0 and dist.trading_day == "2024-06-03"
    us = CapitalDistribution.from_s2c(
        11, "AAPL", reply(updateTimestamp=None, updateTime="2024-06-03 10:00:00"), now=NOW
    )
    assert us.update_timestamp == 1_717_423_200.0  # 14:00 UTC, New York on summer time


@pytest.mark.parametrize(
    "fields",
    [
        {"updateTimestamp": None, "updateTime": "2024-02-30 09:30:00"},
        {"updateTimestamp": None, "updateTime": "2100-01-01 09:30:00"},
        {"updateTimestamp": None, "updateTime": "1999-12-31 09:30:00"},
        {"updateTimestamp": T0 * 1000, "updateTime": ""},  # ms: "year 58870 is out of range"
        {"updateTimestamp": 1e20, "updateTime": ""},  # OverflowError from datetime
        {"updateTimestamp": 1e20},
        {"updateTime": ""},
        {"updateTime": "2024-06-03T09:30:00"},
        {"updateTime": "9999-99-99 00:00:00"},
        {"updateTimestamp": 4_102_444_800.0, "updateTime": "2100-01-01 08:00:00"},
        {"updateTimestamp": 0.0, "updateTime": "1970-01-01 08:00:00"},
        {"updateTime": "2024-06-04 09:30:00"},  # a date that the timestamp contradicts
        {"capitalInBig": float("nan")},
        {"capitalOutMid": float("inf")},
        {"capitalOutSuper": -5.0},
    ],
)
def test_an_invalid_reply_gives_the_clear_error(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidSnapshot):
        CapitalDistribution.from_s2c(1, "00700", reply(**fields), now=NOW)
