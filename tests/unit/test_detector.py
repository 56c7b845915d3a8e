"""DetectorState: hysteresis, confirmation, cooldown, cancellation, day reset, ids."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from streams.processing.detector import (
    Alert,
    DetectorState,
    Direction,
    Regime,
    RegimeSpan,
    make_alert_id,
    side_of,
    threshold,
)
from streams.processing.flow import FlowPoint, FlowState, Snapshot
from streams.processing.thresholds import DetectorParams

DAY = "2026-11-25"
T0 = 1_795_570_200.0
# theta = max(10, 0 * dT) = 10 unless a test says otherwise.
FIXED = DetectorParams(theta_abs=10.0, theta_rel=0.0, confirm=2, cooldown=600.0)


def point(t: float, r_w: float, d_t: float = 0.0, day: str = DAY) -> FlowPoint:
    return FlowPoint(
        security="HK.00700",
        market="HK",
        trading_day=day,
        event_ts=t,
        window_s=300.0,
        net_super=0.0,
        net_big=r_w,
        net_mid=0.0,
        net_small=0.0,
        large_net=r_w,
        turnover=d_t,
        change_super=0.0,
        change_big=r_w,
        change_mid=0.0,
        change_small=0.0,
        change_large=r_w,
        change_turnover=d_t,
        snapshots_in_window=1,
    )


def feed(
    state: DetectorState, values: Sequence[float], params: DetectorParams = FIXED, step: float = 10
) -> list[Alert | None]:
    return [state.step(point(T0 + step * i, r), params) for i, r in enumerate(values)]


def alerts_of(results: list[Alert | None]) -> list[tuple[int, Alert]]:
    return [(i, a) for i, a in enumerate(results) if a is not None]


def test_threshold_and_sides() -> None:
    params = DetectorParams(theta_abs=5.0, theta_rel=0.1)
    assert threshold(point(T0, 0.0, d_t=30.0), params) == 5.0
    assert threshold(point(T0, 0.0, d_t=300.0), params) == 30.0
    assert side_of(10.0, 10.0) is Regime.INFLOW
    assert side_of(-10.0, 10.0) is Regime.OUTFLOW
    assert side_of(9.99, 10.0) is None
    # theta == 0: any non-zero R_W is on a side, zero is on none.
    assert side_of(0.0, 0.0) is None
    assert side_of(1e-9, 0.0) is Regime.INFLOW
    assert side_of(-1e-9, 0.0) is Regime.OUTFLOW


def test_zero_r_w_with_zero_threshold_changes_nothing() -> None:
    state = DetectorState()
    params = DetectorParams(theta_abs=0.0, theta_rel=0.1)
    assert state.step(point(T0, 0.0, d_t=0.0), params) is None
    assert state.regime is Regime.NEUTRAL and state.threshold == 0.0
    state.step(point(T0 + 1, 5.0, d_t=20.0), params)  # theta 2
    assert state.regime is Regime.INFLOW
    state.step(point(T0 + 2, 0.0, d_t=0.0), params)
    assert state.regime is Regime.INFLOW


def test_neutral_to_side_is_not_a_reversal() -> None:
    state = DetectorState()
    results = feed(state, [0, 5, 15, 20, 30, 40])
    assert alerts_of(results) == []
    assert state.regime is Regime.INFLOW
    state2 = DetectorState()
    assert alerts_of(feed(state2, [-15, -20, -30])) == []
    assert state2.regime is Regime.OUTFLOW


def test_hysteresis_band_keeps_regime() -> None:
    state = DetectorState()
    feed(state, [15, 5, 0, -9, 3])
    assert state.regime is Regime.INFLOW
    assert state.current == RegimeSpan(Regime.INFLOW, T0, 15, 5)


def test_reversal_confirmed_on_second_snapshot() -> None:
    state = DetectorState()
    #            0   1   2   3    4    5   6
    results = feed(state, [0, 12, 30, 20, -11, -5, -40])
    got = alerts_of(results)
    assert [i for i, _ in got] == [5]  # flip at 4 counts 1, snapshot 5 (in band) holds -> 2
    alert = got[0][1]
    assert alert.direction == "inflow_to_outflow"
    assert alert.event_ts == T0 + 50
    assert alert.regime_started_ts == T0 + 40
    assert alert.previous_regime == "INFLOW"
    assert alert.previous_peak == 30
    assert alert.previous_regime_started_ts == T0 + 10
    assert alert.r_w == -5
    assert alert.threshold == 10
    assert alert.confirm == 2
    assert alert.window_s == 300.0
    assert alert.alert_id == make_alert_id("HK.00700", DAY, "inflow_to_outflow", T0 + 40)
    assert len(alert.alert_id) == 32 and int(alert.alert_id, 16) >= 0


def test_outflow_to_inflow_and_confirm_one_and_three() -> None:
    one = DetectorParams(theta_abs=10.0, theta_rel=0.0, confirm=1)
    got = alerts_of(feed(DetectorState(), [-20, -50, 12], one))
    assert [(i, a.direction, a.previous_peak) for i, a in got] == [(2, "outflow_to_inflow", -50)]
    three = DetectorParams(theta_abs=10.0, theta_rel=0.0, confirm=3)
    got = alerts_of(feed(DetectorState(), [-20, -50, 12, 13, 14, 15], three))
    assert [i for i, _ in got] == [4]


def test_pending_flip_cancelled_when_crossed_back() -> None:
    state = DetectorState()
    #                      0    1    2     3    4   5   6
    results = feed(state, [20, 35, -12, 14, 16, 18, 40])
    assert alerts_of(results) == []
    assert state.cancelled == 1
    assert state.regime is Regime.INFLOW
    # The inflow regime resumes as if the blip never happened.
    assert state.current == RegimeSpan(Regime.INFLOW, T0, 40, 7)
    assert not state.pending and state.flipped_from is None
    # A later genuine reversal reports the whole inflow regime.
    more = [state.step(point(T0 + 100 + 10 * i, r), FIXED) for i, r in enumerate([-20, -25])]
    assert more[0] is None and more[1] is not None
    assert more[1].previous_regime_started_ts == T0 and more[1].previous_peak == 40


def test_cooldown_limits_alerts_in_event_time() -> None:
    params = DetectorParams(theta_abs=10.0, theta_rel=0.0, confirm=2, cooldown=600.0)
    state = DetectorState()
    # Step 60 s: flips at i=2 (out), 4 (in), 14 (out).
    values = [20, 20, -20, -20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, -20, -20]
    got = alerts_of(feed(state, values, params, step=60))
    # i=3 alerts (t=180); i=5 (t=300) is within 600 s: suppressed; i=15 (t=900) alerts.
    assert [i for i, _ in got] == [3, 15]
    assert state.suppressed == 1
    assert got[1][1].previous_regime_started_ts == T0 + 240


def test_cooldown_boundary_is_inclusive() -> None:
    params = DetectorParams(theta_abs=10.0, theta_rel=0.0, confirm=1, cooldown=100.0)
    got = alerts_of(feed(DetectorState(), [20, -20, 20, -20], params, step=100))
    assert [i for i, _ in got] == [1, 2, 3]


def test_new_day_resets_to_neutral() -> None:
    state = DetectorState()
    feed(state, [20, 30])
    assert state.regime is Regime.INFLOW
    # Next day starts NEUTRAL: an outflow is an entry, not a reversal.
    a = state.step(point(T0 + 86_400, -20, day="2026-11-26"), FIXED)
    b = state.step(point(T0 + 86_410, -30, day="2026-11-26"), FIXED)
    assert a is None and b is None
    assert state.regime is Regime.OUTFLOW and state.trading_day == "2026-11-26"
    # Points of the old day, or older than the last, are ignored.
    assert state.step(point(T0 + 90_000, 50, day=DAY), FIXED) is None
    assert state.step(point(T0 + 86_405, 50, day="2026-11-26"), FIXED) is None
    assert state.regime is Regime.OUTFLOW


def test_relative_threshold_uses_turnover_change() -> None:
    params = DetectorParams(theta_abs=0.0, theta_rel=0.1, confirm=1)
    state = DetectorState()
    # R_W 50 against dT 1000 -> theta 100: band.
    assert state.step(point(T0, 50, d_t=1000), params) is None
    assert state.regime is Regime.NEUTRAL and state.threshold == 100
    state.step(point(T0 + 1, 150, d_t=1000), params)
    assert state.regime is Regime.INFLOW
    alert = state.step(point(T0 + 2, -120, d_t=1100), params)
    assert alert is not None and alert.threshold == pytest.approx(110)


def test_alert_dict_round_trip_and_id_ignores_confirmation_time() -> None:
    a = alerts_of(feed(DetectorState(), [20, -20, -20]))[0][1]
    assert Alert.from_dict(a.to_dict()) == a
    assert a.to_dict()["alert_id"] == a.alert_id
    # Same flip confirmed later (confirm=3) keeps the id.
    three = DetectorParams(theta_abs=10.0, theta_rel=0.0, confirm=3)
    b = alerts_of(feed(DetectorState(), [20, -20, -20, -20], three))[0][1]
    assert b.event_ts != a.event_ts and b.alert_id == a.alert_id


def test_state_round_trip() -> None:
    state = DetectorState()
    feed(state, [20, 35, -12])
    restored = DetectorState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert restored.to_dict() == state.to_dict()
    p = point(T0 + 1000, -30)
    assert restored.step(p, FIXED) == state.step(p, FIXED)
    with pytest.raises(ValueError, match="version"):
        DetectorState.from_dict({**state.to_dict(), "v": 0})


def test_state_dict_is_the_dataclass_fields() -> None:
    state = DetectorState()
    feed(state, [20, 35, -12])
    data = state.to_dict()
    assert data["v"] == 2 and data["regime"] == "OUTFLOW"
    assert set(data) == {"v", "regime"} | {f.name for f in dataclasses.fields(DetectorState)}
    assert data["current"] == {"side": "OUTFLOW", "started_ts": T0 + 20, "peak": -12, "held": 1}
    assert data["flipped_from"] == {"side": "INFLOW", "started_ts": T0, "peak": 35, "held": 2}


def test_state_load_rejects_damage() -> None:
    state = DetectorState()
    feed(state, [20, 35, -12])
    good = state.to_dict()
    with pytest.raises(ValueError, match="contradicts"):
        DetectorState.from_dict({**good, "regime": "INFLOW"})
    with pytest.raises(ValueError, match=r"detector\.current: a regime span is INFLOW or OUTFLOW"):
        DetectorState.from_dict({**good, "current": {**good["current"], "side": "NEUTRAL"}})
    with pytest.raises(ValueError, match=r"detector\.flipped_from\.held: expected int"):
        DetectorState.from_dict({**good, "flipped_from": {**good["flipped_from"], "held": "2"}})
    with pytest.raises(ValueError, match="missing"):
        DetectorState.from_dict({k: v for k, v in good.items() if k != "alerts"})


def v1_state(**changes: Any) -> dict[str, Any]:
    """A state as version 1 stored it: an INFLOW regime flipped to OUTFLOW, pending."""
    data: dict[str, Any] = {
        "v": 1, "trading_day": DAY, "last_ts": T0 + 20, "last_alert_ts": None,
        "threshold": 10.0, "regime": "OUTFLOW", "started_ts": T0 + 20, "peak": -12.0,
        "held": 1, "pending": True, "prev_regime": "INFLOW", "prev_started_ts": T0,
        "prev_peak": 35.0, "prev_held": 2, "alerts": 0, "suppressed": 0, "cancelled": 0,
    }  # fmt: skip
    data.update(changes)
    return data


def test_version_1_state_loads_and_behaves_the_same() -> None:
    state = DetectorState.from_dict(v1_state())
    assert state.current == RegimeSpan(Regime.OUTFLOW, T0 + 20, -12.0, 1)
    assert state.flipped_from == RegimeSpan(Regime.INFLOW, T0, 35.0, 2)
    fresh = DetectorState()
    feed(fresh, [20, 35, -12])
    assert state == fresh
    alert = state.step(point(T0 + 30, -15), FIXED)
    assert alert is not None and alert.previous_peak == 35.0
    assert alert.previous_regime_started_ts == T0 and alert.regime_started_ts == T0 + 20


def test_version_1_mirrors_without_a_pending_flip_are_dropped() -> None:
    # After a confirmation version 1 left prev_* filled in; they meant nothing.
    state = DetectorState.from_dict(v1_state(pending=False, held=3, alerts=1))
    assert state.flipped_from is None and state.current is not None
    assert state.current.held == 3 and state.alerts == 1
    neutral = v1_state(regime="NEUTRAL", started_ts=None, peak=0.0, held=0, pending=False)
    loaded = DetectorState.from_dict(neutral)
    assert loaded.current is None and loaded.regime is Regime.NEUTRAL
    with pytest.raises(ValueError, match="missing 'prev_peak'"):
        DetectorState.from_dict({k: v for k, v in v1_state().items() if k != "prev_peak"})


def test_direction_is_a_plain_string_in_payloads() -> None:
    alert = alerts_of(feed(DetectorState(), [20, -20, -20]))[0][1]
    assert alert.direction is Direction.INFLOW_TO_OUTFLOW
    assert orjson.dumps(alert.to_dict()["direction"]) == b'"inflow_to_outflow"'
    assert f"{alert.direction}" == "inflow_to_outflow"
    # Strings from a payload become the enums; anything else is refused.
    assert Alert.from_dict(alert.to_dict()).direction is Direction.INFLOW_TO_OUTFLOW
    with pytest.raises(ValueError):
        Alert.from_dict({**alert.to_dict(), "direction": "sideways"})
    with pytest.raises(ValueError, match="NEUTRAL"):
        Direction.leaving(Regime.NEUTRAL)


# -- properties: snapshots -> flow -> detector, with restarts --------------------------


@st.composite
def snapshot_streams(draw: Any) -> list[Snapshot]:
    """Streams that swing between large inflow and outflow, with noise."""
    n = draw(st.integers(min_value=1, max_value=60))
    t = T0
    amounts = [0.0] * 8
    day = DAY
    out: list[Snapshot] = []
    for _ in range(n):
        kind = draw(st.sampled_from(["in", "out", "in", "out", "mix", "dup", "reset", "day"]))
        if kind == "dup" and out:
            out.append(out[-1])
            continue
        if kind == "day":
            day, t, amounts = "2026-11-26", t + 50_000, [0.0] * 8
        elif kind == "reset":
            amounts = [a / 2 for a in amounts]
        else:
            size = float(draw(st.integers(0, 10**7)))
            k = draw(st.integers(0, 7)) if kind == "mix" else 5 if kind == "out" else 1
            amounts[k] += size
            amounts[draw(st.integers(0, 7))] += float(draw(st.integers(0, 10**5)))
        t += draw(st.sampled_from([0, 5, 30, 60, 120, 301]))
        out.append(Snapshot("HK.00700", "HK", day, t, *amounts))
    return out


PARAMS = st.builds(
    DetectorParams,
    window=st.sampled_from([60.0, 300.0]),
    theta_abs=st.sampled_from([0.0, 1e5, 1e6]),
    theta_rel=st.sampled_from([0.0, 0.1, 0.3]),
    confirm=st.integers(1, 3),
    cooldown=st.sampled_from([0.0, 60.0, 600.0]),
)

Output = tuple[FlowPoint | None, str, float, Alert | None]


def process(
    flow: FlowState, det: DetectorState, snaps: list[Snapshot], params: DetectorParams
) -> list[Output]:
    out: list[Output] = []
    for s in snaps:
        p = flow.update(s)
        alert = det.step(p, params) if p is not None else None
        out.append((p, det.regime.value, det.threshold, alert))
    return out


@settings(max_examples=100, deadline=None)
@given(snapshot_streams(), PARAMS, st.integers(0, 60))
def test_replay_with_restart_gives_identical_points_and_alert_ids(
    snaps: list[Snapshot], params: DetectorParams, cut: int
) -> None:
    full = process(FlowState(params.window), DetectorState(), snaps, params)
    again = process(FlowState(params.window), DetectorState(), snaps, params)
    assert again == full

    cut = min(cut, len(snaps))
    flow, det = FlowState(params.window), DetectorState()
    head = process(flow, det, snaps[:cut], params)
    blob = orjson.dumps({"flow": flow.to_dict(), "detector": det.to_dict()})
    data = orjson.loads(blob)
    flow2, det2 = FlowState.from_dict(data["flow"]), DetectorState.from_dict(data["detector"])
    tail = process(flow2, det2, snaps[cut:], params)
    assert head + tail == full
    event(f"alerts: {min(sum(o[3] is not None for o in full), 3)}")
    ids = [o[3].alert_id for o in full if o[3] is not None]
    assert ids == [o[3].alert_id for o in head + tail if o[3] is not None]
    # Alerts are spaced by the cooldown, and only ever follow a real flip.
    times = [o[3].event_ts for o in full if o[3] is not None]
    assert all(b - a >= params.cooldown for a, b in itertools.pairwise(times))
    for o in full:
        if o[3] is not None:
            assert o[3].previous_regime != o[1]
            assert o[3].previous_regime in ("INFLOW", "OUTFLOW")
