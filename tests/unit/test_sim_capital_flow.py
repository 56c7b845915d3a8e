"""The simulator's capital flow (3211) against its own capital distribution (3212).

Same model, same seed: every row is the class nets of the 3212 answer at its minute,
the partial last row is the 3212 answer now, and lastValidTime is its updateTime.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.capital_flow import FLOW_CLASSES, CapitalFlow
from streams.opend_sim.market import MarketModel
from streams.opend_sim.scenario import DEMO_PATH, load_scenario, parse_scenario

HK = ZoneInfo("Asia/Hong_Kong")
CLASSES = ("super", "big", "mid", "small")
DEMO = load_scenario(DEMO_PATH)
MODELS = {
    "scripted": MarketModel(DEMO, seed=DEMO.seed or 0),  # HK.00700 follows the script
    "random walk": MarketModel(seed=5),
}


def hk(day: str, hms: str) -> float:
    return datetime.fromisoformat(f"{day}T{hms}").replace(tzinfo=HK).timestamp()


def nets_3212(model: MarketModel, security: str, t: float) -> dict[str, float]:
    d = model.distribution(security, t)
    return {
        f: (getattr(d, f"capital_in_{c}") or 0.0) - (getattr(d, f"capital_out_{c}") or 0.0)
        for f, c in zip(FLOW_CLASSES, CLASSES, strict=True)
    }


def assert_row_is_3212(model: MarketModel, cf: CapitalFlow, index: int, at: float) -> None:
    row = cf.rows[index]
    want = nets_3212(model, cf.security, at)
    got = {f: getattr(row, f) for f in FLOW_CLASSES}
    assert got == pytest.approx(want, abs=1e-6), (index, row.time)
    assert row.large_net == pytest.approx(model.large_net(cf.security, at), abs=1e-6)
    assert row.in_flow == pytest.approx(sum(want.values()), abs=0.01)


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@pytest.mark.parametrize("security", ["HK.00700", "HK.09988"])
def test_every_row_is_the_capital_distribution_of_its_minute(
    model: MarketModel, security: str
) -> None:
    now = hk("2024-06-03", "14:21:37")
    cf = model.capital_flow(security, now)
    cf.validate(now)
    times = [r.time[11:] for r in cf.rows]
    # 09:30 .. 12:00, 13:00 .. 14:21, then 14:22 in progress; nothing inside lunch.
    assert times[0] == "09:30:00" and times[150] == "12:00:00" and times[151] == "13:00:00"
    assert times[-2:] == ["14:21:00", "14:22:00"] and len(times) == 151 + 82 + 1
    assert not [t for t in times if "12:00:00" < t < "13:00:00"]
    assert [getattr(cf.rows[0], f) for f in ("in_flow", *FLOW_CLASSES)] == [0.0] * 5
    for index, row in enumerate(cf.rows[:-1]):
        assert_row_is_3212(model, cf, index, row.timestamp)
    # The partial row: labelled 14:22, valued as of now, which is 3212's updateTime now.
    assert cf.partial_row is cf.rows[-1]
    assert_row_is_3212(model, cf, len(cf.rows) - 1, now)
    dist = model.distribution(security, now)
    assert (cf.last_valid_time, cf.last_valid_timestamp) == (dist.update_time, now)
    assert cf.rows[1].large_net != 0.0  # the model moves: the comparisons above mean something


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 8 * 3600))
def test_at_any_second_the_last_row_is_3212_now(offset: int) -> None:
    model = MODELS["scripted"]
    now = hk("2024-06-03", "09:00:00") + offset
    cf = model.capital_flow("HK.00700", now)
    dist = model.distribution("HK.00700", now)
    assert cf.last_valid_time == dist.update_time
    assert cf.last_valid_timestamp == dist.update_timestamp
    cf.validate(now)
    if cf.rows:
        last = cf.rows[-1]
        assert last.timestamp >= dist.update_timestamp > last.timestamp - 60
        assert_row_is_3212(model, cf, len(cf.rows) - 1, dist.update_timestamp)


@pytest.mark.parametrize(
    ("hms", "rows", "last_valid"),
    [
        ("09:29:59", 0, "09:29:59"),  # before the open: no rows, lastValidTime now
        ("09:30:00", 1, "09:30:00"),  # the open row alone, zeros
        ("09:30:25", 2, "09:30:25"),  # the open row and 09:31 in progress
        ("12:00:00", 151, "12:00:00"),
        ("12:40:00", 151, "12:00:00"),  # lunch: frozen at the last trade, like 3212
        ("13:00:00", 152, "13:00:00"),
        ("16:00:00", 332, "16:00:00"),
        ("20:00:00", 332, "16:00:00"),
    ],
)
def test_rows_through_the_day(hms: str, rows: int, last_valid: str) -> None:
    model = MODELS["scripted"]
    now = hk("2024-06-03", hms)
    cf = model.capital_flow("HK.00700", now)
    assert len(cf.rows) == rows
    assert cf.last_valid_time == f"2024-06-03 {last_valid}"
    assert cf.trading_day == "2024-06-03"
    assert cf.last_valid_time == model.distribution("HK.00700", now).update_time
    if rows:
        assert [getattr(cf.rows[0], f) for f in ("in_flow", *FLOW_CLASSES)] == [0.0] * 5
    assert (cf.partial_row is not None) == (hms == "09:30:25")


def test_closed_days_have_no_rows_as_3212_has_zeros() -> None:
    scenario = parse_scenario(
        {"start": "2024-06-03T09:30:00+08:00", "holidays": {"HK": ["2024-06-10"]}}
    )
    model = MarketModel(scenario, seed=2)
    for day in ("2024-06-08", "2024-06-10"):  # a Saturday, a scenario holiday
        now = hk(day, "11:00:00")
        cf = model.capital_flow("HK.00700", now)
        assert cf.rows == () and cf.trading_day == day
        assert cf.last_valid_time == model.distribution("HK.00700", now).update_time
        assert sum(v or 0.0 for v in model.distribution("HK.00700", now).amounts().values()) == 0


def test_us_minutes_follow_new_york() -> None:
    model = MODELS["random walk"]
    ny = ZoneInfo("America/New_York")
    now = datetime(2024, 6, 3, 9, 35, 10, tzinfo=ny).timestamp()
    cf = model.capital_flow("US.AAPL", now)
    assert [r.time[11:] for r in cf.rows] == [f"09:{m}:00" for m in range(30, 37)]
    assert cf.last_valid_time == "2024-06-03 09:35:10"
    for index, row in enumerate(cf.rows[:-1]):
        assert_row_is_3212(model, cf, index, row.timestamp)
