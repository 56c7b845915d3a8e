"""The detector against the edge cases of the definitions (docs/definitions.md), one each."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.processing.detector import DetectorState, Direction, Regime
from streams.processing.thresholds import DetectorParams
from tests.unit.test_detector import T0, alerts_of, feed, point

NEXT_DAY = "2026-11-26"
# theta = 10: values strictly inside (-10, 10) are in the band.
band = st.floats(-9.99, 9.99)
confirms = st.integers(1, 5)


def fixed(confirm: int = 2, cooldown: float = 600.0) -> DetectorParams:
    return DetectorParams(theta_abs=10.0, theta_rel=0.0, confirm=confirm, cooldown=cooldown)


@given(st.floats(1e-6, 1e12))
def test_r_w_exactly_on_theta_crosses(theta: float) -> None:
    params = DetectorParams(theta_abs=theta, theta_rel=0.0, confirm=1)
    up, down = DetectorState(), DetectorState()
    up.step(point(T0, theta), params)
    down.step(point(T0, -theta), params)
    assert up.regime is Regime.INFLOW and down.regime is Regime.OUTFLOW
    # On a regime, exactly -theta is the opposite threshold: a flip (confirm 1: an alert).
    alert = up.step(point(T0 + 1, -theta), params)
    assert alert is not None and alert.direction is Direction.INFLOW_TO_OUTFLOW


@given(st.floats(1e-3, 1e9))
def test_r_w_exactly_on_relative_theta_crosses(r_w: float) -> None:
    params = DetectorParams(theta_abs=0.0, theta_rel=0.5, confirm=1)
    state = DetectorState()
    state.step(point(T0, r_w, d_t=2 * r_w), params)  # theta = 0.5 * 2 r_w = r_w exactly
    assert state.threshold == r_w and state.regime is Regime.INFLOW


@given(st.lists(st.sampled_from([-20.0, -5.0, 0.0, 5.0, 20.0]), max_size=12), confirms)
def test_zero_r_w_with_zero_theta_crosses_nothing(prefix: list[float], confirm: int) -> None:
    params = DetectorParams(theta_abs=0.0, theta_rel=0.0, confirm=confirm)
    state = DetectorState()
    feed(state, prefix, params)
    before_regime, before_span, cancelled = state.regime, state.current, state.cancelled
    state.step(point(T0 + 10 * len(prefix), 0.0, d_t=0.0), params)
    assert state.threshold == 0.0
    assert state.regime is before_regime and state.cancelled == cancelled
    if before_span is not None:  # the regime holds: same span, one more point
        assert state.current is not None
        assert state.current.started_ts == before_span.started_ts
        assert state.current.held == before_span.held + 1


@given(confirms)
def test_flip_snapshot_is_the_first_of_confirm(confirm: int) -> None:
    results = feed(DetectorState(), [20.0] + [-20.0] * (confirm + 3), fixed(confirm))
    got = alerts_of(results)
    # The flip is point 1; it counts as one, so point `confirm` confirms.
    assert [i for i, _ in got] == [confirm]
    assert got[0][1].regime_started_ts == T0 + 10


@given(confirms.flatmap(lambda k: st.lists(band, min_size=k - 1, max_size=k - 1)))
def test_held_means_the_regime_stays_on_the_new_side(after_flip: list[float]) -> None:
    # After the flip, points in the band (even positive ones) keep OUTFLOW: they count.
    confirm = len(after_flip) + 1
    results = feed(DetectorState(), [20.0, -20.0, *after_flip], fixed(confirm))
    got = alerts_of(results)
    assert [i for i, _ in got] == [confirm]
    assert got[0][1].r_w == ([-20.0, *after_flip])[-1]


@given(st.integers(2, 5).flatmap(lambda k: st.tuples(st.just(k), st.integers(1, k - 1), band)))
def test_flip_returning_before_confirmation_gives_no_alert(case: tuple[int, int, float]) -> None:
    confirm, new_side_points, in_band = case
    state = DetectorState()
    values = [20.0, 30.0, *[-20.0] * new_side_points, 25.0, in_band, 40.0, 15.0, 12.0]
    results = feed(state, values, fixed(confirm))
    # Neither the flip nor the return (which held long after) is a reversal.
    assert alerts_of(results) == []
    assert state.cancelled == 1 and state.regime is Regime.INFLOW and not state.pending
    # The last confirmed regime stays the reference: a later reversal reports all of it.
    t = T0 + 10 * len(values)
    later = [state.step(point(t + 10 * i, -20.0), fixed(confirm)) for i in range(confirm)]
    alert = later[-1]
    assert alert is not None and alert.direction is Direction.INFLOW_TO_OUTFLOW
    assert alert.previous_regime_started_ts == T0 and alert.previous_peak == 40.0


@given(st.integers(1, 100_000), st.integers(0, 200_000))
def test_cooldown_allows_a_reversal_at_exactly_cooldown(cooldown: int, gap: int) -> None:
    # Whole seconds, as updateTimestamp is: t - last_alert is then exact.
    params = fixed(confirm=1, cooldown=cooldown)
    state = DetectorState()
    feed(state, [20.0])
    first = state.step(point(T0 + 10, -20.0), params)
    assert first is not None
    second = state.step(point(T0 + 10 + gap, 20.0), params)
    assert (second is not None) == (gap >= cooldown)
    assert state.suppressed == (0 if gap >= cooldown else 1)


def test_cooldown_boundary_exactly() -> None:
    params = fixed(confirm=1, cooldown=100.0)
    state = DetectorState()
    feed(state, [20.0, -20.0], params)  # alert at T0 + 10
    assert state.step(point(T0 + 109.999, 20.0), params) is None  # inside: dropped
    state2 = DetectorState()
    feed(state2, [20.0, -20.0], params)
    assert state2.step(point(T0 + 110.0, 20.0), params) is not None  # t - last == cooldown


def test_reversal_confirmed_inside_cooldown_is_never_sent_later() -> None:
    params = fixed(confirm=2, cooldown=600.0)
    state = DetectorState()
    got = alerts_of(feed(state, [20.0, -20.0, -20.0, 20.0, 20.0], params, step=60))
    assert [i for i, _ in got] == [2]  # the OUTFLOW -> INFLOW at point 4 is inside
    assert state.suppressed == 1 and state.regime is Regime.INFLOW
    # Holding INFLOW far past the cooldown never sends it.
    late = [state.step(point(T0 + 300 + 60 * i, 20.0), params) for i in range(1, 40)]
    assert late == [None] * 39
    # The dropped flip's side is now the reference for the next reversal.
    t = T0 + 300 + 60 * 40
    state.step(point(t, -20.0), params)
    alert = state.step(point(t + 60, -20.0), params)
    assert alert is not None and alert.direction is Direction.INFLOW_TO_OUTFLOW
    assert alert.previous_regime_started_ts == T0 + 180


def test_new_day_starts_neutral_and_keeps_the_cooldown_clock() -> None:
    params = fixed(confirm=1, cooldown=600.0)
    state = DetectorState()
    assert alerts_of(feed(state, [20.0, -20.0], params))  # alert at T0 + 10
    # A flip pending at the end of a day is dropped with the day.
    pending = DetectorState()
    feed(pending, [20.0, -20.0], fixed(confirm=2))
    assert pending.step(point(T0 + 100, -20.0, day=NEXT_DAY), fixed(confirm=2)) is None
    assert pending.regime is Regime.OUTFLOW and not pending.pending
    # Next day, 100 s later: NEUTRAL again, so the first side is an entry, not a reversal.
    assert state.step(point(T0 + 110, 20.0, day=NEXT_DAY), params) is None
    assert state.regime is Regime.INFLOW and state.current is not None
    assert state.current.started_ts == T0 + 110 and state.trading_day == NEXT_DAY
    # A reversal inside the cooldown of yesterday's alert is dropped ...
    assert state.step(point(T0 + 200, -20.0, day=NEXT_DAY), params) is None
    assert state.suppressed == 1
    # ... and one at cooldown after it is sent.
    alert = state.step(point(T0 + 610, 20.0, day=NEXT_DAY), params)
    assert alert is not None and alert.trading_day == NEXT_DAY
