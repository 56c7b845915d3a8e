"""`capflow fetch` output of one reply: absent super amounts are shown as absent, not 0;
a capital-flow series one minute a line, the minute in progress marked."""

from __future__ import annotations

import orjson

from streams.commands.fetch import as_json, capital_flow_json, format_capital_flow, format_readable
from streams.domain.capital_flow import CapitalFlow, FlowRow
from streams.opend.snapshot import CapitalDistribution


def reply(in_super: float | None, out_super: float | None) -> CapitalDistribution:
    return CapitalDistribution(
        security="HK.00700", market="HK", qot_market=1, code="00700",
        capital_in_super=in_super, capital_in_big=2.0, capital_in_mid=3.0, capital_in_small=4.0,
        capital_out_super=out_super, capital_out_big=1.5, capital_out_mid=2.5,
        capital_out_small=3.5, update_time="2024-06-03 09:30:00", update_timestamp=1_717_378_200.0,
    )  # fmt: skip


def test_absent_super_amounts_print_as_absent_and_null() -> None:
    text = format_readable(reply(None, None))
    super_line = next(line for line in text.splitlines() if line.strip().startswith("super"))
    assert super_line.count("absent") == 2 and "net" not in super_line
    data = orjson.loads(as_json(reply(None, 0.0), "opend://t:1", 1))
    assert data["capital_in_super"] is None and data["capital_out_super"] == 0.0
    assert data["trading_day"] == "2024-06-03" and data["currency"] == "HKD"
    assert text.splitlines()[0].endswith("amounts in HKD")


def test_present_amounts_print_with_their_net() -> None:
    text = format_readable(reply(7.0, 2.0))
    assert "net" in text.splitlines()[1] and "+5.00" in text.splitlines()[1]


def test_a_capital_flow_without_minutes_or_last_valid_time_says_so() -> None:
    empty = CapitalFlow(
        security="HK.00700", market="HK", qot_market=1, code="00700", trading_day="2024-06-08",
        rows=(), last_valid_time="", last_valid_timestamp=None,
    )  # fmt: skip
    lines = format_capital_flow(empty).splitlines()
    assert lines[0] == "HK.00700  capital flow 2024-06-08  lastValidTime none  (0 minutes)"
    assert "no minutes yet" in lines[-1]
    data = orjson.loads(capital_flow_json(empty, "opend://t:1"))
    assert data["rows"] == [] and data["last_valid_timestamp"] is None


def test_capital_flow_minutes_print_signed_with_the_partial_one_marked() -> None:
    rows = (
        FlowRow("2024-06-03 09:30:00", 1_717_378_200.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        FlowRow("2024-06-03 09:31:00", 1_717_378_260.0, -1.5, 1.0, -1.0, 0.5, 0.25),
    )
    cf = CapitalFlow(
        security="HK.00700", market="HK", qot_market=1, code="00700", trading_day="2024-06-03",
        rows=rows, last_valid_time="2024-06-03 09:30:45", last_valid_timestamp=1_717_378_245.0,
    )  # fmt: skip
    lines = format_capital_flow(cf).splitlines()
    assert lines[2].split() == ["09:30:00", "+0.00", "+0.00", "+0.00", "+0.00", "+0.00"]
    assert lines[3].split()[:6] == ["09:31:00", "+1.00", "-1.00", "+0.50", "+0.25", "-1.50"]
    assert lines[3].endswith("in progress, as of 09:30:45") and "progress" not in lines[2]
