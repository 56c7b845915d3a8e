"""Capital-flow series (3211): the validity rules, the wire reader and the topic record."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.capital_flow import (
    FLOW_CLASSES,
    CapitalFlow,
    FlowRow,
    capital_flow_from_proto,
    capital_flow_to_proto,
    validate_capital_flow,
)
from streams.domain.market import format_local_time
from streams.domain.validation import InvalidSnapshot
from streams.opend.capital_flow import capital_flow_from_s2c, capital_flow_to_s2c
from streams.pb.capflow.v1.capital_flow_pb2 import CapitalFlowSeries
from streams.pb.opend import Qot_GetCapitalFlow_pb2 as capflow_pb

T0 = 1_717_378_200.0  # 2024-06-03 09:30:00 HKT
NOW = T0 + 3600.0
US_OPEN = 1_717_421_400.0  # 2024-06-03 09:30:00 New York (13:30 UTC)


def row(minute: int, value: float = 0.0, start: float = T0, market: str = "HK") -> FlowRow:
    ts = start + 60.0 * minute
    return FlowRow(
        time=format_local_time(market, ts),
        timestamp=ts,
        in_flow=4 * value,
        super_in_flow=value,
        big_in_flow=value,
        mid_in_flow=value,
        sml_in_flow=value,
    )


def series(rows: list[FlowRow] | None = None, **overrides: Any) -> CapitalFlow:
    rows = [row(0), row(1, 10.0), row(2, -5.5), row(3, 7.25)] if rows is None else rows
    last = rows[-1].timestamp - 20 if rows else T0 - 600
    fields: dict[str, Any] = {
        "security": "HK.00700",
        "market": "HK",
        "qot_market": 1,
        "code": "00700",
        "trading_day": "2024-06-03",
        "rows": tuple(rows),
        "last_valid_time": format_local_time(overrides.get("market", "HK"), last),
        "last_valid_timestamp": last,
    }
    fields.update(overrides)
    return CapitalFlow(**fields)


def rule_of(cf: CapitalFlow, now: float | None = NOW) -> InvalidSnapshot:
    with pytest.raises(InvalidSnapshot) as info:
        validate_capital_flow(cf, now)
    assert info.value.detail and info.value.security in (cf.security, "")
    return info.value


def test_a_valid_series_passes_and_knows_its_partial_minute() -> None:
    cf = series()
    validate_capital_flow(cf, NOW)
    assert cf.partial_row == cf.rows[-1]  # labelled 09:33, data as of 09:32:40
    assert cf.complete_rows == cf.rows[:-1]
    on_the_mark = series(last_valid_time="2024-06-03 09:33:00", last_valid_timestamp=T0 + 180)
    assert on_the_mark.partial_row is None and on_the_mark.complete_rows == on_the_mark.rows
    assert cf.rows[1].large_net == 20.0
    # L at each instant: the minute in progress at lastValidTime, the others at their mark.
    assert cf.large_net_levels() == [
        (T0, 0.0),
        (T0 + 60, 20.0),
        (T0 + 120, -11.0),
        (T0 + 160, 14.5),
    ]
    assert on_the_mark.large_net_levels()[-1] == (T0 + 180, 14.5)


def test_no_rows_is_valid_before_the_open() -> None:
    validate_capital_flow(series([]), NOW)
    validate_capital_flow(series([], last_valid_time="", last_valid_timestamp=None), NOW)


def test_negative_nets_and_an_inflow_not_summing_the_classes_pass_as_sent() -> None:
    odd = dataclasses.replace(row(1, -3.0), in_flow=123.0)
    validate_capital_flow(series([row(0), odd]), NOW)


@pytest.mark.parametrize("field", ["in_flow", *FLOW_CLASSES, "main_in_flow"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_every_value_must_be_finite(field: str, bad: float) -> None:
    rows = [row(0), dataclasses.replace(row(1, 2.0), **{field: bad}), row(2)]
    err = rule_of(series(rows))
    assert err.rule == "amount" and err.row == 1
    assert "row 1 (2024-06-03 09:31:00)" in str(err) and field in str(err)


@pytest.mark.parametrize("field", ["in_flow", *FLOW_CLASSES])
def test_a_missing_value_is_an_error_not_zero(field: str) -> None:
    rows = [row(0), dataclasses.replace(row(1, 2.0), **{field: None})]
    err = rule_of(series(rows))
    assert err.rule == "missing" and err.row == 1 and field in err.detail


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"time": "2024-06-03T09:31:00"}, "timestamp"),
        ({"time": "2024-06-03 09:61:00"}, "timestamp"),
        ({"time": "2024-02-30 09:31:00"}, "timestamp"),
        ({"time": ""}, "timestamp"),
        ({"time": "2024-06-03 09:32:00"}, "timestamp"),  # disagrees with its timestamp
        ({"timestamp": T0 + 60 + 3600}, "timestamp"),  # ... or the other way round
        ({"timestamp": float("nan")}, "timestamp"),
        ({"time": "2024-06-04 09:31:00", "timestamp": T0 + 86_460}, "trading_day"),
    ],
)
def test_row_times_must_parse_agree_and_lie_on_the_day(change: dict[str, Any], rule: str) -> None:
    rows = [row(0), dataclasses.replace(row(1), **change), row(2)]
    err = rule_of(series(rows))
    assert (err.rule, err.row) == (rule, 1)
    assert "row 1" in err.detail


def test_time_is_read_in_the_markets_zone() -> None:
    us = [row(0, start=US_OPEN, market="US"), row(1, 3.0, start=US_OPEN, market="US")]
    assert us[0].time == "2024-06-03 09:30:00"
    cf = series(us, security="US.AAPL", market="US", qot_market=11, code="AAPL")
    validate_capital_flow(cf, cf.rows[-1].timestamp)
    hk_reading = dataclasses.replace(us[1], time="2024-06-03 21:31:00")  # the same instant in HK
    assert rule_of(series([us[0], hk_reading], security="US.AAPL", market="US")).rule == (
        "timestamp"
    )


@pytest.mark.parametrize(("order", "how"), [([0, 2, 1], "comes before"), ([0, 1, 1], "repeats")])
def test_minutes_out_of_order_or_repeated(order: list[int], how: str) -> None:
    err = rule_of(series([row(m, float(m)) for m in order]))
    assert err.rule == "order" and err.row == 2 and how in err.detail and "row 1" in err.detail


@pytest.mark.parametrize(
    "change",
    [
        {"last_valid_time": "2024-06-04 09:00:00", "last_valid_timestamp": T0 + 84_600},
        {"last_valid_time": "2024-06-02 16:00:00", "last_valid_timestamp": T0 - 63_000},
        {"last_valid_time": "2024-06-03 09:40:00"},  # disagrees with the timestamp
        {"last_valid_time": "not a time"},
        {"last_valid_time": ""},  # a timestamp without its time
        {"last_valid_timestamp": None},  # a time without its timestamp
    ],
)
def test_last_valid_time_must_lie_on_the_day(change: dict[str, Any]) -> None:
    err = rule_of(series(**change))
    assert err.rule == "last_valid_time" and err.row is None and "lastValidTime" in err.detail


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"trading_day": "2024-06-02"}, "trading_day"),  # the rows are on the 3rd
        ({"trading_day": "2024-02-30"}, "trading_day"),
        ({"trading_day": "03/06/2024"}, "trading_day"),
        ({"security": "HK.00700", "market": "US"}, "security"),
        ({"security": "00700"}, "security"),
    ],
)
def test_day_and_security(change: dict[str, Any], rule: str) -> None:
    assert rule_of(series(**change)).rule == rule


def test_a_day_far_ahead_of_the_clock_or_before_2000_is_rejected() -> None:
    assert rule_of(series(), now=T0 - 3 * 86_400).rule == "trading_day"
    validate_capital_flow(series(), now=None)  # no clock: that rule is skipped
    old = [row(0, start=T0 - 25 * 365.25 * 86_400)]
    assert rule_of(series(old, trading_day=old[0].time[:10], last_valid_time="")).rule == (
        "trading_day"
    )


# -- the wire --------------------------------------------------------------------------


def s2c_of(cf: CapitalFlow) -> capflow_pb.S2C:
    s2c = capflow_pb.S2C()
    capital_flow_to_s2c(cf, s2c)
    return capflow_pb.S2C.FromString(s2c.SerializeToString())


def test_the_wire_reads_back_what_was_written() -> None:
    cf = series()
    assert capital_flow_from_s2c(1, "00700", s2c_of(cf), now=NOW) == cf


def test_an_absent_timestamp_comes_from_the_time_and_vice_versa() -> None:
    s2c = s2c_of(series())
    s2c.flowItemList[1].ClearField("timestamp")
    s2c.flowItemList[2].ClearField("time")
    s2c.ClearField("lastValidTimestamp")
    assert capital_flow_from_s2c(1, "00700", s2c, now=NOW) == series()
    us = series(
        [row(0, start=US_OPEN, market="US")], security="US.AAPL", market="US", qot_market=11,
        code="AAPL", last_valid_time="2024-06-03 09:30:00", last_valid_timestamp=US_OPEN,
    )  # fmt: skip
    wire = s2c_of(us)
    wire.flowItemList[0].ClearField("timestamp")
    wire.ClearField("lastValidTime")
    got = capital_flow_from_s2c(11, "AAPL", wire, now=US_OPEN)
    assert got.rows[0].timestamp == US_OPEN and got.last_valid_time == "2024-06-03 09:30:00"


@pytest.mark.parametrize("wire", ["inFlow", "superInFlow", "bigInFlow", "midInFlow", "smlInFlow"])
def test_a_row_without_a_value_on_the_wire_is_an_error(wire: str) -> None:
    s2c = s2c_of(series())
    s2c.flowItemList[2].ClearField(wire)
    with pytest.raises(InvalidSnapshot, match=f"row 2 .*without {wire}") as info:
        capital_flow_from_s2c(1, "00700", s2c, now=NOW)
    assert info.value.rule == "missing" and info.value.row == 2


def test_a_row_without_time_and_timestamp_is_an_error() -> None:
    s2c = s2c_of(series())
    s2c.flowItemList[1].ClearField("time")
    s2c.flowItemList[1].ClearField("timestamp")
    with pytest.raises(InvalidSnapshot, match="row 1: neither time nor timestamp") as info:
        capital_flow_from_s2c(1, "00700", s2c, now=NOW)
    assert info.value.rule == "missing"


def test_the_trading_day_of_a_reply() -> None:
    # The rows' date; without rows lastValidTime's; without either, the request's day.
    assert capital_flow_from_s2c(1, "00700", s2c_of(series()), now=NOW).trading_day == (
        "2024-06-03"
    )
    before_open = series([], last_valid_time="2024-06-03 09:00:00", last_valid_timestamp=T0 - 1800)
    assert capital_flow_from_s2c(1, "00700", s2c_of(before_open), now=NOW) == before_open
    empty = capital_flow_from_s2c(1, "00700", capflow_pb.S2C(), now=T0 + 86_400)
    assert empty.trading_day == "2024-06-04" and empty.rows == () and empty.last_valid_time == ""


def test_a_reply_with_rows_of_two_days_is_an_error() -> None:
    s2c = s2c_of(series())
    s2c.flowItemList[3].time = "2024-06-04 09:33:00"
    s2c.flowItemList[3].timestamp = T0 + 86_400 + 180
    with pytest.raises(InvalidSnapshot) as info:
        capital_flow_from_s2c(1, "00700", s2c, now=NOW)
    assert info.value.rule == "trading_day" and info.value.row == 3


# -- the record ------------------------------------------------------------------------


def roundtrip(cf: CapitalFlow) -> CapitalFlow:
    msg = capital_flow_to_proto(cf, "opend://127.0.0.1:11111", 1_717_381_800_123, 7)
    return capital_flow_from_proto(CapitalFlowSeries.FromString(msg.SerializeToString()), NOW)


def test_the_record_carries_everything_and_keeps_main_inflow_absent() -> None:
    cf = series()
    msg = capital_flow_to_proto(cf, "opend://h:1", 5, 9)
    assert (msg.source, msg.received_at_ms, msg.poll_seq, msg.period_type) == (
        "opend://h:1",
        5,
        9,
        1,
    )
    assert not msg.rows[0].HasField("main_in_flow")
    assert roundtrip(cf) == cf
    with_main = series([dataclasses.replace(row(0), main_in_flow=0.0)])
    back = roundtrip(with_main)
    assert back.rows[0].main_in_flow == 0.0
    none_sent = series(last_valid_time="", last_valid_timestamp=None)
    assert capital_flow_to_proto(none_sent, "s", 1, 1).last_valid_timestamp == 0.0
    assert roundtrip(none_sent) == none_sent


def test_an_invalid_record_raises_the_same_error() -> None:
    msg = capital_flow_to_proto(series(), "s", 1, 1)
    msg.rows[1].big_in_flow = float("nan")
    with pytest.raises(InvalidSnapshot) as info:
        capital_flow_from_proto(msg, NOW)
    assert info.value.rule == "amount" and info.value.row == 1
    swapped = capital_flow_to_proto(series(), "s", 1, 1)
    swapped.rows[1].CopyFrom(swapped.rows[2])
    daily = capital_flow_to_proto(series(), "s", 1, 1, period_type=2)
    for msg, rule in (
        (swapped, "order"),
        (daily, "period_type"),
        (CapitalFlowSeries(), "security"),
    ):
        with pytest.raises(InvalidSnapshot) as info:
            capital_flow_from_proto(msg)
        assert info.value.rule == rule


finite = st.floats(min_value=-1e13, max_value=1e13, allow_nan=False)
values = st.tuples(finite, finite, finite, finite, finite, st.none() | finite)


@st.composite
def valid_series(draw: st.DrawFn) -> CapitalFlow:
    """Rows at distinct minutes of the day, in order, with any finite values."""
    minutes = sorted(draw(st.sets(st.integers(0, 390), max_size=40)))
    rows = []
    for minute in minutes:
        inflow, sup, big, mid, sml, main = draw(values)
        ts = T0 + 60.0 * minute
        rows.append(FlowRow(format_local_time("HK", ts), ts, inflow, sup, big, mid, sml, main))
    cut = draw(st.integers(0, 59))
    if not rows or draw(st.booleans()):
        return series(rows, last_valid_time="", last_valid_timestamp=None)
    last = rows[-1].timestamp - cut
    return series(rows, last_valid_time=format_local_time("HK", last), last_valid_timestamp=last)


@given(valid_series())
def test_any_valid_series_survives_the_record_and_the_wire(cf: CapitalFlow) -> None:
    validate_capital_flow(cf, NOW)
    assert roundtrip(cf) == cf
    assert capital_flow_from_s2c(1, "00700", s2c_of(cf), now=NOW) == cf


@given(valid_series(), st.data())
def test_rows_must_be_strictly_increasing(cf: CapitalFlow, data: st.DataObject) -> None:
    """Any two rows swapped (or one repeated) is rejected, naming the later row."""
    if len(cf.rows) < 2:
        return
    i = data.draw(st.integers(0, len(cf.rows) - 2))
    j = data.draw(st.integers(i + 1, len(cf.rows) - 1))
    rows = list(cf.rows)
    if data.draw(st.booleans()):
        rows[i], rows[j] = rows[j], rows[i]
    else:
        rows[j] = rows[i]
    err = rule_of(dataclasses.replace(cf, rows=tuple(rows)))
    assert err.rule == "order" and err.row is not None and i < err.row <= j
