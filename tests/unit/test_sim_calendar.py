"""The simulator's calendar: holidays and half days from the scenario, OpenD's market states."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from streams.opend_sim.calendar import (
    STATE_AFTERNOON,
    STATE_CLOSED,
    STATE_MORNING,
    STATE_REST,
    STATE_WAITING_OPEN,
    Calendar,
)
from streams.opend_sim.market import MarketModel
from streams.opend_sim.scenario import ScenarioError, parse_scenario

HKT = ZoneInfo("Asia/Hong_Kong")


def hk(day: str, hhmm: str) -> float:
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=HKT).timestamp()


SCENARIO = parse_scenario(
    {
        "start": "2024-06-03T09:30:00+08:00",
        "holidays": {"HK": ["2024-06-10"]},
        "half_days": {"HK": {"2024-06-07": "12:00"}},
    }
)
CAL = SCENARIO.calendar


@pytest.mark.parametrize(
    ("day", "hhmm", "state"),
    [
        ("2024-06-03", "09:00:00", STATE_WAITING_OPEN),
        ("2024-06-03", "10:00:00", STATE_MORNING),
        ("2024-06-03", "12:30:00", STATE_REST),
        ("2024-06-03", "14:00:00", STATE_AFTERNOON),
        ("2024-06-03", "16:30:00", STATE_CLOSED),
        ("2024-06-08", "10:00:00", STATE_CLOSED),  # Saturday
        ("2024-06-10", "10:00:00", STATE_CLOSED),  # holiday
        ("2024-06-07", "11:00:00", STATE_AFTERNOON),  # half day: one session only
        ("2024-06-07", "14:00:00", STATE_CLOSED),  # half day, after the early close
    ],
)
def test_states(day: str, hhmm: str, state: int) -> None:
    assert CAL.state("HK", hk(day, hhmm)) == state


def test_other_markets_keep_the_table() -> None:
    assert CAL.sessions("US", hk("2024-06-10", "23:00:00"))[1]  # a US trading day
    assert Calendar().state("XX", 0.0) == 0


def test_last_trade() -> None:
    assert CAL.last_trade("HK", hk("2024-06-03", "09:00:00")) is None
    assert CAL.last_trade("HK", hk("2024-06-03", "12:30:00")) == hk("2024-06-03", "12:00:00")
    assert CAL.last_trade("HK", hk("2024-06-03", "20:00:00")) == hk("2024-06-03", "16:00:00")
    assert CAL.last_trade("HK", hk("2024-06-07", "15:00:00")) == hk("2024-06-07", "12:00:00")


def test_update_time_freezes_at_the_last_trade_after_the_close() -> None:
    model = MarketModel(SCENARIO, seed=3)
    at_close = model.distribution("HK.00700", hk("2024-06-03", "16:00:00"))
    evening = model.distribution("HK.00700", hk("2024-06-03", "19:45:10"))
    assert evening == at_close  # same amounts, same updateTime/updateTimestamp
    assert evening.update_time == "2024-06-03 16:00:00"
    lunch = model.distribution("HK.00700", hk("2024-06-03", "12:40:00"))
    assert lunch.update_time == "2024-06-03 12:00:00"
    live = model.distribution("HK.00700", hk("2024-06-03", "10:11:12"))
    assert live.update_time == "2024-06-03 10:11:12"


def test_no_flow_on_a_holiday() -> None:
    model = MarketModel(SCENARIO, seed=3)
    holiday = model.distribution("HK.00700", hk("2024-06-10", "15:00:00"))
    assert sum(holiday.amounts().values()) == 0.0
    assert sum(model.distribution("HK.00700", hk("2024-06-11", "15:00:00")).amounts().values()) > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"holidays": {"XX": ["2024-06-10"]}}, "unknown market"),
        ({"holidays": {"HK": ["10 June"]}}, "YYYY-MM-DD"),
        ({"holidays": {"HK": "2024-06-10"}}, "list of dates"),
        ({"half_days": {"HK": {"2024-06-07": "noon"}}}, "HH:MM"),
        ({"half_days": {"HK": ["2024-06-07"]}}, "object of date"),
    ],
)
def test_bad_calendars_are_clear_errors(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario({"start": "2024-06-03T09:30:00+08:00", **extra})
