"""The eight amounts as one value, and the one codec of the snapshot record."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.amounts import AMOUNT_NAMES, ZERO, Amounts
from streams.domain.snapshot_record import (
    reading_fields,
    record_amounts,
    record_currency,
    snapshot_to_proto,
)
from streams.opend.snapshot import CapitalDistribution, snapshot_from_proto
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pipeline.processor import snapshot_from_record

VALUES = st.lists(st.floats(min_value=0, max_value=1e12, allow_nan=False), min_size=8, max_size=8)


def test_named_fields_and_derived_numbers() -> None:
    a = Amounts(1.0, 20.0, 300.0, 4000.0, 0.5, 2.0, 30.0, 400.0)
    assert tuple(a) == a.values() and a._fields == AMOUNT_NAMES
    assert (a.net_super, a.net_big, a.net_mid, a.net_small) == (0.5, 18.0, 270.0, 3600.0)
    assert a.net("mid") == 270.0
    assert a.large_net == 18.5
    assert a.turnover == 4753.5
    assert Amounts() == ZERO and ZERO.turnover == 0.0


@given(VALUES, VALUES)
def test_arithmetic_is_element_wise(x: list[float], y: list[float]) -> None:
    a, b = Amounts.of(x), Amounts.of(y)
    assert (a + b).values() == tuple(p + q for p, q in zip(x, y, strict=True))
    assert (a - b).values() == tuple(p - q for p, q in zip(x, y, strict=True))
    assert len(a + b) == 8  # never tuple concatenation


def test_of_needs_exactly_eight() -> None:
    with pytest.raises(ValueError, match="expected 8 amounts, got 7"):
        Amounts.of([1.0] * 7)


def dist(in_super: float | None, out_super: float | None) -> CapitalDistribution:
    return CapitalDistribution(
        security="HK.00700", market="HK", qot_market=1, code="00700",
        capital_in_super=in_super, capital_in_big=2.0, capital_in_mid=3.0, capital_in_small=4.0,
        capital_out_super=out_super, capital_out_big=1.5, capital_out_mid=2.5,
        capital_out_small=3.5, update_time="2024-06-03 09:30:00", update_timestamp=1_717_378_200.0,
    )  # fmt: skip


@pytest.mark.parametrize(("in_super", "out_super"), [(None, None), (0.0, None), (7.0, 0.0)])
def test_record_codec_round_trips_and_keeps_absent_apart_from_zero(
    in_super: float | None, out_super: float | None
) -> None:
    d = dist(in_super, out_super)
    msg = DistributionSnapshot.FromString(
        snapshot_to_proto(d, "opend://t:1", 123, 4).SerializeToString()
    )
    assert msg.trading_day == "2024-06-03" and msg.source == "opend://t:1"
    assert msg.currency == record_currency(msg) == "HKD"
    assert record_amounts(msg)["capital_in_super"] == in_super
    assert record_amounts(msg)["capital_out_super"] == out_super
    assert snapshot_from_proto(msg) == d
    assert CapitalDistribution(**reading_fields(msg)) == d
    snap = snapshot_from_record(msg)  # the flow processor's view, same mapping
    assert (snap.in_super, snap.out_super, snap.in_big, snap.out_small) == (
        in_super, out_super, 2.0, 3.5,
    )  # fmt: skip


def test_a_record_written_before_it_named_a_currency_decodes_in_its_markets() -> None:
    """Field 20 absent (an older poller): the record decodes, the market's currency applies."""
    fresh = snapshot_to_proto(dist(1.0, 1.0), "opend://t:1", 123, 4)
    old = DistributionSnapshot.FromString(fresh.SerializeToString())
    old.ClearField("currency")
    raw = old.SerializeToString()
    assert b"HKD" not in raw and b"HKD" in fresh.SerializeToString()
    msg = DistributionSnapshot.FromString(raw)
    assert msg.currency == "" and record_currency(msg) == "HKD"
    assert snapshot_from_proto(msg) == dist(1.0, 1.0)
    us = DistributionSnapshot(security="US.AAPL", market="US")
    assert record_currency(us) == "USD"
    assert record_currency(DistributionSnapshot(security="XX.1", market="XX")) is None
    # A record's own currency is what it says.
    assert record_currency(DistributionSnapshot(market="HK", currency="USD")) == "USD"
