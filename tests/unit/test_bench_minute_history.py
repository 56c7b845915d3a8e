"""The pure helpers of bench/minute_history.py and bench/detection_delay.py: alert
matching, warm times, the flip schedules and the comparison variants."""

from __future__ import annotations

import itertools
import random
from typing import Any

from bench.detection_delay import build_scenario, flow_spent, two_flips, variants
from bench.minute_history import (
    alerts_per_flip,
    compare_alerts,
    first_baselines,
    flips_around,
    flips_every,
    next_flip_times,
    unequal,
)
from streams.opend_sim.scenario import reversal_times

OUT, IN = "inflow_to_outflow", "outflow_to_inflow"


def alert(security: str, direction: str, t: float, **more: Any) -> dict[str, Any]:
    return {"security": security, "direction": direction, "event_ts": t, **more}


def test_alerts_pair_by_security_direction_and_time() -> None:
    ref = [alert("HK.1", OUT, 1000), alert("HK.2", IN, 1100), alert("HK.3", OUT, 1200)]
    late = [
        alert("HK.1", OUT, 1060),  # 60 s later: the same
        alert("HK.2", OUT, 1100),  # the other direction: extra, and HK.2's is missing
        alert("HK.3", OUT, 1300),  # 100 s later: too far apart
    ]
    c = compare_alerts(ref, late, since=900)
    assert c.same == 1 and c.offsets == [60]
    assert [(a["security"], a["event_ts"]) for a in c.extra] == [("HK.2", 1100), ("HK.3", 1300)]
    assert [(a["security"], a["event_ts"]) for a in c.missing] == [("HK.2", 1100), ("HK.3", 1200)]


def test_each_alert_pairs_once_the_closest_first() -> None:
    ref = [alert("HK.1", OUT, 1000)]
    late = [alert("HK.1", OUT, 1080), alert("HK.1", OUT, 1010)]
    c = compare_alerts(ref, late, since=0)
    assert c.same == 1 and c.offsets == [10]
    assert [a["event_ts"] for a in c.extra] == [1080]
    assert c.missing == []


def test_alerts_before_the_cut_count_only_as_partners() -> None:
    # The reference saw the flip 30 s before the cut, the late worker 20 s after: the
    # same alert, neither extra nor missing. One well before the cut is not counted.
    ref = [alert("HK.1", OUT, 970), alert("HK.2", IN, 500)]
    late = [alert("HK.1", OUT, 1020)]
    c = compare_alerts(ref, late, since=1000)
    assert (c.same, c.extra, c.missing) == (1, [], [])
    # Both before the cut: not compared at all.
    c = compare_alerts([alert("HK.1", OUT, 950)], [alert("HK.1", OUT, 960)], since=1000)
    assert (c.same, c.extra, c.missing) == (0, [], [])
    # A lone one just before the cut is neither extra nor missing.
    c = compare_alerts([alert("HK.1", OUT, 950)], [], since=1000)
    assert (c.same, c.extra, c.missing) == (0, [], [])


def test_the_first_flow_with_a_baseline_per_security() -> None:
    flows = [
        {"security": "HK.1", "event_ts": 30, "baseline": "minute"},
        {"security": "HK.1", "event_ts": 10, "baseline": "none"},
        {"security": "HK.1", "event_ts": 20, "baseline": "snapshot"},
        {"security": "HK.2", "event_ts": 15, "baseline": "none"},
    ]
    first = first_baselines(flows)
    assert list(first) == ["HK.1"]
    assert first["HK.1"]["event_ts"] == 20


def test_flips_every_gap_until_the_last() -> None:
    draw = flips_every((600, 1200), (1500, 2400), 8000)
    for seed in range(20):
        flips = draw(random.Random(seed))
        assert 600 <= flips[0] <= 1200 and flips[-1] <= 8000
        gaps = [b - a for a, b in itertools.pairwise(flips)]
        assert all(1500 <= g <= 2400 for g in gaps)
        assert flips[-1] + 2400 > 8000 or len(flips) == 1  # no room was left unused


def test_flips_around_an_outage() -> None:
    draw = flips_around(3600, 4800)
    for seed in range(20):
        before, inside, after = draw(random.Random(seed))
        assert 600 <= before <= 2100 and 3660 <= inside <= 4740 and 5700 <= after <= 6300


def test_a_scenario_with_drawn_flips_alternates_direction() -> None:
    scenario, length = build_scenario(6, 2, 1, flips_around(3600, 4800))
    flips = reversal_times(scenario)
    assert [len(flips[f"HK.{i:05d}"]) for i in range(1, 7)] == [3, 3, 0, 0, 0, 0]
    for revs in flips.values():
        directions = [r.direction for r in revs]
        assert all(a != b for a, b in itertools.pairwise(directions))
    last = max(r.at for revs in flips.values() for r in revs)  # rounded to 0.1 s
    assert abs(length - (last + 1100)) <= 0.05


def test_the_default_flips_are_the_earlier_scenario() -> None:
    # Two flips, drawn in the order the benchmark always drew them (same seed, same day).
    rng = random.Random(3)
    first, second = two_flips(rng)
    assert 600 <= first <= 1200 and 1500 <= second - first <= 1800
    scenario, _ = build_scenario(30, 10, 308)
    assert all(len(r) == 2 for s, r in reversal_times(scenario).items() if int(s[3:]) <= 10)


def test_alerts_per_flip_until_the_next_flip() -> None:
    scenario, _ = build_scenario(3, 1, 4, flips_around(3600, 4800))
    end = scenario.start + 7000
    flips = reversal_times(scenario)["HK.00001"]
    until = next_flip_times(scenario, end)
    assert until[f"HK.00001@{flips[0].epoch}"] == flips[1].epoch
    assert until[f"HK.00001@{flips[2].epoch}"] == end
    inside = flips[1]
    alerts = [
        alert("HK.00001", inside.direction, inside.epoch + 200),
        alert("HK.00001", inside.direction, inside.epoch - 10),  # before it: not its
        alert("HK.00002", inside.direction, inside.epoch + 200),  # another security
        alert("HK.00001", inside.direction, flips[2].epoch + 1),  # after the next flip
    ]
    got = alerts_per_flip([inside], alerts, until)
    assert [a["event_ts"] for a in got[inside]] == [inside.epoch + 200]


def test_variants_put_the_baseline_first() -> None:
    schedule = variants("schedule", ["round-robin", "adaptive"])
    assert [v.name for v in schedule] == ["round-robin", "adaptive"]
    assert schedule[0].flags == ("--schedule", "round-robin")
    history = variants("history", ["round-robin"])
    assert [v.flags[-1] for v in history] == ["--no-minute-history", "--minute-history"]
    assert all(v.flags[:2] == ("--schedule", "adaptive") for v in history)
    assert len({v.key for v in history}) == 2


def test_flow_spent_sums_the_gateways() -> None:
    status = {
        "gateways": [
            {"capital_flow": {"requests": {"total": 3, "ok": 2, "before_poll": 1}}},
            {"capital_flow": None},
            {"capital_flow": {"requests": {"total": 4, "ok": 4, "before_poll": 0}}},
        ]
    }
    assert flow_spent(status) == {"total": 7, "ok": 6, "before_poll": 1}
    assert flow_spent({}) == {}


def test_unequal_alerts_say_how_far_the_others_lie() -> None:
    extra = [alert("HK.1", OUT, 1300), alert("HK.2", IN, 1400)]
    others = [alert("HK.1", OUT, 1150), alert("HK.1", OUT, 2000), alert("HK.2", OUT, 1400)]
    assert unequal(extra, others, t0=1000) == [
        "HK.1 inflow_to_outflow at t0 + 300 s (the other's -150 s from it)",
        "HK.2 outflow_to_inflow at t0 + 400 s (none by the other)",
    ]
