"""The simulator's market model: pure, monotone within a day, zero before the open."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from streams.domain.market import is_open, next_open
from streams.opend.snapshot import AMOUNT_FIELDS, snapshot_from_proto, snapshot_to_proto
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel, availability
from streams.opend_sim.scenario import (
    DEMO_PATH,
    ScenarioError,
    load_scenario,
    parse_scenario,
    reversal_times,
)

HK = ZoneInfo("Asia/Hong_Kong")


def hk(day: str, hms: str) -> float:
    return datetime.fromisoformat(f"{day}T{hms}").replace(tzinfo=HK).timestamp()


@pytest.fixture(scope="module")
def demo() -> MarketModel:
    scenario = load_scenario(DEMO_PATH)
    return MarketModel(scenario, seed=scenario.seed or 0)


def amounts(model: MarketModel, security: str, t: float) -> list[float]:
    return list(model.distribution(security, t).amounts().values())


@pytest.mark.parametrize("security", ["HK.00700", "HK.00005"])
def test_monotone_within_day_and_frozen_at_lunch(demo: MarketModel, security: str) -> None:
    day = "2024-06-03"
    times = [hk(day, "09:00:00") + 97 * i for i in range(int(8 * 3600 / 97))]
    prev = [0.0] * 8
    for t in times:
        cur = amounts(demo, security, t)
        assert all(c >= p for c, p in zip(cur, prev, strict=True)), t
        prev = cur
    assert amounts(demo, security, hk(day, "09:29:59")) == [0.0] * 8
    assert amounts(demo, security, hk(day, "12:00:00")) == amounts(
        demo, security, hk(day, "12:59:59")
    )
    assert amounts(demo, security, hk(day, "16:00:00")) == amounts(
        demo, security, hk(day, "23:59:59")
    )
    assert sum(amounts(demo, security, hk(day, "16:00:00"))) > 0


def test_resets_next_day_and_zero_on_weekends(demo: MarketModel) -> None:
    assert sum(amounts(demo, "HK.00700", hk("2024-06-03", "15:00:00"))) > 0
    assert amounts(demo, "HK.00700", hk("2024-06-04", "09:00:00")) == [0.0] * 8
    assert sum(amounts(demo, "HK.00700", hk("2024-06-04", "10:00:00"))) > 0
    assert amounts(demo, "HK.00700", hk("2024-06-08", "11:00:00")) == [0.0] * 8  # Saturday


def test_pure_function_of_inputs(demo: MarketModel) -> None:
    t = hk("2024-06-03", "10:17:42.6")
    again = MarketModel(demo.scenario, seed=demo.seed)
    assert demo.distribution("HK.00005", t) == again.distribution("HK.00005", t)
    assert demo.distribution("HK.00005", t).update_timestamp == int(t)  # whole seconds
    other_seed = MarketModel(demo.scenario, seed=demo.seed + 1)
    assert other_seed.distribution("HK.00005", t) != demo.distribution("HK.00005", t)


def test_scripted_rate_sign_matches_segment(demo: MarketModel) -> None:
    assert demo.scenario is not None
    start = demo.scenario.start
    for security, script in demo.scenario.securities.items():
        ends = [*script.boundaries(), 2400.0]
        for seg, end in zip(script.segments, ends, strict=False):
            if seg.at >= end:
                continue
            a, b = start + seg.at + 1, start + min(end, seg.at + 300) - 1
            delta = demo.large_net(security, b) - demo.large_net(security, a)
            expected = seg.large_net_rate * (int(b) - int(a))
            assert delta == pytest.approx(expected, rel=1e-6, abs=1e-3), (security, seg)


def test_demo_reversals_within_first_40_minutes() -> None:
    scenario = load_scenario(DEMO_PATH)
    flips = reversal_times(scenario)
    assert 3 <= len(scenario.securities) <= 4
    assert sum(len(v) for v in flips.values()) >= 3
    for security, items in flips.items():
        for rev in items:
            assert 0 < rev.at <= 2400
            assert rev.epoch == scenario.start + rev.at
            assert rev.security == security
    assert [r.direction for r in flips["HK.00700"]] == ["inflow_to_outflow", "outflow_to_inflow"]


def test_us_hours() -> None:
    ny = ZoneInfo("America/New_York")
    t_open = datetime(2024, 6, 3, 9, 30, tzinfo=ny).timestamp()
    assert not is_open("US", t_open - 1) and is_open("US", t_open)
    model = MarketModel(seed=3)
    assert amounts(model, "US.AAPL", t_open) == [0.0] * 8
    assert sum(amounts(model, "US.AAPL", t_open + 600)) > 0


@pytest.mark.parametrize(
    ("security", "status"),
    [
        ("HK.00700", "ok"),
        ("SZ.000001", "ok"),
        ("US.AAPL", "ok"),
        ("HK.99999", "unknown"),
        ("HK.7", "unknown"),
        ("HK.800000", "unsupported"),
        ("SH.000001", "unsupported"),
        ("SZ.399001", "unsupported"),
        ("US..IXIC", "unsupported"),
        ("SG.D05", "unsupported"),
    ],
)
def test_availability_rule(security: str, status: str) -> None:
    assert availability(security).status == status


def test_scenario_validation() -> None:
    with pytest.raises(ScenarioError):
        parse_scenario({"start": "2024-06-03T09:30:00"})  # no offset
    with pytest.raises(ScenarioError):
        parse_scenario(
            {
                "start": "2024-06-03T09:30:00+08:00",
                "securities": {
                    "HK.00700": {
                        "segments": [
                            {"at": 5, "large_net_rate": 1},
                            {"at": 5, "large_net_rate": -1},
                        ]
                    }
                },
            }
        )


def test_scenario_watchlist_groups() -> None:
    start = "2024-06-03T09:30:00+08:00"
    groups = {"Tech": ["hk.00700", "US.AAPL", "HK.00700"], "空": []}
    scenario = parse_scenario({"start": start, "user_groups": groups})
    assert scenario.user_groups == {"Tech": ("HK.00700", "US.AAPL"), "空": ()}
    assert parse_scenario({"start": start}).user_groups == {}
    for bad in ({"Tech": "HK.00700"}, {"Tech": ["XX.1"]}, {"": ["HK.00700"]}, ["HK.00700"]):
        with pytest.raises(ScenarioError, match="user_groups"):
            parse_scenario({"start": start, "user_groups": bad})


def test_snapshot_round_trip(demo: MarketModel) -> None:
    dist = demo.distribution("HK.00700", hk("2024-06-03", "10:00:00"))
    snap = snapshot_to_proto(dist, "opend://127.0.0.1:11111", 1_700_000_000_123, 9)
    assert snap.trading_day == "2024-06-03" and snap.qot_market == 1 and snap.poll_seq == 9
    assert snapshot_from_proto(snap) == dist
    assert {name: getattr(snap, name) for name in AMOUNT_FIELDS} == dist.amounts()


def test_clock_speed_and_freeze() -> None:
    wall = [100.0]
    clock = SimClock(start=1000.0, speed=60, wall=lambda: wall[0])
    wall[0] += 2
    assert clock.now() == 1120.0
    clock.set(5000.0, speed=0)
    wall[0] += 50
    assert clock.now() == 5000.0
    clock.advance(30)
    assert clock.now() == 5030.0


def test_next_open() -> None:
    fri_close = hk("2024-06-07", "16:30:00")
    assert next_open("HK", fri_close) == hk("2024-06-10", "09:30:00")  # Monday
    assert next_open("HK", hk("2024-06-03", "12:10:00")) == hk("2024-06-03", "13:00:00")
    inside = hk("2024-06-03", "10:00:00")
    assert next_open("HK", inside) == inside
    assert not is_open("SG", inside)


def test_fractional_segment_time_applies_exactly() -> None:
    """A segment starting at a fractional ``at`` takes effect at start + at, not a minute later.

    ``start + at - start`` rounds below ``at`` for many fractional values; the segment
    lookup must compare absolute times the way the integration cuts them.
    """
    start = hk("2024-06-03", "09:30:00")
    ats = [600 + k / 100 for k in range(1, 100)]
    rounded_down = [at for at in ats if (start + at) - start < at]
    assert rounded_down, "no fractional time rounds down: the test would prove nothing"
    for at in rounded_down[:10]:
        scenario = parse_scenario(
            {
                "start": "2024-06-03T09:30:00+08:00",
                "securities": {
                    "HK.00700": {
                        "noise": 0,
                        "segments": [
                            {"at": 0, "large_net_rate": 100000},
                            {"at": at, "large_net_rate": -100000},
                        ],
                    }
                },
            }
        )
        model = MarketModel(scenario, seed=1)
        # Within the second after the cut: (at - 600) s at +100000, the rest at -100000.
        step = model.large_net("HK.00700", start + 601) - model.large_net("HK.00700", start + 600)
        frac = at - 600
        assert step == pytest.approx(100000 * frac - 100000 * (1 - frac), abs=0.05), at
        # The rest of that simulated minute runs at the new rate.
        later = model.large_net("HK.00700", start + 659) - model.large_net("HK.00700", start + 601)
        assert later == pytest.approx(-100000 * 58, abs=0.05), at
