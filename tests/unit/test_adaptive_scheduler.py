"""Adaptive scheduler on a fake clock: the staleness floor, priorities, prediction, determinism."""

from __future__ import annotations

import copy
import itertools
import logging
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pipeline.processor import Polled, SecurityProcessor, SecurityState
from streams.polling.adaptive import Adaptive
from streams.polling.poller import Poller
from streams.polling.scheduler import RoundRobin, make_scheduler
from streams.processing.backfill import MinuteSeries
from streams.processing.events import parse_flow
from streams.processing.flow import MinuteLevel, Snapshot
from streams.processing.thresholds import DetectorParams, ThresholdConfig

DAY = "2024-06-03"
T0 = 1717378200.0  # 2024-06-03 09:30 HK


def flow(
    sec: str,
    t: float,
    regime: str,
    *,
    large: float = 0.0,
    turnover: float = 0.0,
    r_w: float = 0.0,
    d_t: float = 1.0,
    theta: float = 0.1,
    window: float = 300.0,
) -> dict[str, Any]:
    """The fields of a capflow.flow.v1 record the scheduler reads."""
    return {
        "security": sec,
        "trading_day": DAY,
        "event_ts": t,
        "window_s": window,
        "large_net": large,
        "turnover": turnover,
        "change": {"large": r_w, "turnover": d_t},
        "threshold": theta,
        "regime": regime,
    }


# -- the floor ------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=25),
    slack=st.integers(min_value=0, max_value=10),
    slower=st.sampled_from([1.0, 1.0, 1.1, 1.5]),
    steps=st.integers(min_value=50, max_value=400),
    events=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=24),  # which security
            st.sampled_from(["INFLOW", "OUTFLOW", "NEUTRAL"]),
            st.floats(min_value=-1e6, max_value=1e6),  # L change
            st.floats(min_value=0, max_value=1e6),  # T change
            st.floats(min_value=0.0, max_value=0.999),  # reply delay, share of an interval
        ),
        min_size=1,
        max_size=400,
    ),
)
def test_no_gap_exceeds_max_staleness_when_feasible(
    n: int,
    slack: int,
    slower: float,
    steps: int,
    events: list[tuple[int, str, float, float, float]],
) -> None:
    """Whatever the flows say (flips everywhere, wild rates), every security's gap between
    polls stays within max_staleness while N x interval <= max_staleness - 2 x interval,
    also when requests come slower than the configured interval."""
    interval = 1.0 * slower  # what the poller really achieves
    max_staleness = (n + 2 + slack) * interval
    sched = Adaptive(max_staleness, interval=1.0, min_gap=0.5, probe_gap=0.5, long_gap=0.1)
    due = [f"HK.{i:05d}" for i in range(n)]
    polls: dict[str, list[float]] = defaultdict(list)
    level: dict[str, tuple[float, float]] = defaultdict(lambda: (0.0, 0.0))
    for step in range(steps):
        now = step * interval
        sec = sched.next(due, now)
        assert sec in due
        which, regime, d_l, d_t, delay = events[step % len(events)]
        received = now + delay * interval
        sched.polled(sec, received)
        polls[sec].append(received)
        # Feed a flow for the polled security, steered by the drawn values.
        large, turnover = level[sec]
        large, turnover = large + d_l, turnover + d_t
        level[sec] = (large, turnover)
        target = due[which % n]
        rec = flow(target, received, regime, large=large, turnover=turnover, r_w=d_l, d_t=d_t + 1)
        sched.observe_flow(target, rec)
    assert not sched.degraded
    end = steps * interval
    for sec in due:
        times = [0.0, *polls[sec]]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        if end - times[-1] > max_staleness:
            gaps.append(end - times[-1])
        assert max(gaps) <= max_staleness, (sec, max(gaps))


def test_infeasible_floor_degrades_to_round_robin_by_age(caplog: pytest.LogCaptureFixture) -> None:
    sched = Adaptive(10.0, interval=1.0)
    due = [f"HK.{i:05d}" for i in range(9)]  # 9 x 1 s > 10 s - 2 x 1 s
    picked = []
    with caplog.at_level(logging.WARNING, logger="streams.polling.adaptive"):
        for step in range(36):
            sec = sched.next(due, float(step))
            assert sec is not None
            sched.polled(sec, step + 0.5)
            picked.append(sec)
            if step == 1:
                # A flip waiting for confirmation must not jump the queue now.
                sched.observe_flow(due[5], flow(due[5], 1.0, "INFLOW"))
                sched.observe_flow(due[5], flow(due[5], 2.0, "OUTFLOW"))
    assert sched.degraded
    assert picked == due * 4
    assert any("cannot be met" in r.getMessage() for r in caplog.records)


# -- priorities -----------------------------------------------------------------------


def primed(n: int = 10, max_staleness: float = 600.0) -> tuple[Adaptive, list[str], float]:
    """A scheduler that has polled ``n`` securities once (1 s apart), all INFLOW."""
    sched = Adaptive(max_staleness, interval=1.0)
    due = [f"HK.{i:05d}" for i in range(n)]
    now = 0.0
    for _ in due:
        sec = sched.next(due, now)
        assert sec is not None
        sched.polled(sec, now)
        sched.observe_flow(sec, flow(sec, now, "INFLOW", r_w=5.0, d_t=10.0, theta=1.0))
        now += 1.0
    return sched, due, now


def test_pending_flip_is_polled_first_after_min_gap() -> None:
    sched, due, _now = primed()
    sec = due[7]
    sched.observe_flow(sec, flow(sec, 7.5, "OUTFLOW", r_w=-5.0, d_t=10.0, theta=1.0))
    assert sched.pending() == [sec]
    # min_gap (3 s) after its last poll at 7.0: not before 10.0.
    assert sched.next(due, 9.5) != sec
    assert sched.next(due, 10.5) == sec
    assert sched.choices["urgent"] == 1


def test_flip_that_returns_before_confirmation_is_not_urgent() -> None:
    sched, due, _now = primed()
    sec = due[3]
    sched.observe_flow(sec, flow(sec, 11.0, "OUTFLOW", r_w=-5.0, d_t=10.0, theta=1.0))
    sched.observe_flow(sec, flow(sec, 12.0, "INFLOW", r_w=5.0, d_t=10.0, theta=1.0))
    assert sched.pending() == []
    assert sched.next(due, 20.0) == due[0]  # the oldest, not the returned flip


def test_confirmed_flip_stops_being_urgent() -> None:
    sched, due, _now = primed()
    sec = due[3]
    sched.observe_flow(sec, flow(sec, 11.0, "OUTFLOW", r_w=-5.0, d_t=10.0, theta=1.0))
    sched.polled(sec, 15.0)
    sched.observe_flow(sec, flow(sec, 15.0, "OUTFLOW", r_w=-6.0, d_t=10.0, theta=1.0))
    assert sched.pending() == []
    assert sched.next(due, 20.0) == due[0]


def test_a_never_polled_security_comes_after_a_confirming_poll_before_the_rest() -> None:
    """Nothing can alert on a security before its first snapshot: it goes before an
    approach (and a probe), after a pending flip's confirming poll."""
    sched, due, _now = primed()
    turning, flipping, new = due[2], due[5], "HK.09999"
    sched.observe_flow(turning, flow(turning, 20.0, "INFLOW", large=-1e6, r_w=5, d_t=10, theta=1))
    sched.observe_flow(turning, flow(turning, 60.0, "INFLOW", large=-2e6, r_w=5, d_t=10, theta=1))
    track = sched._tracks[turning]  # L falls fast: R_W crosses at once, an approach
    assert track.want_class == 1 and track.want_event is not None and track.want_event < 80.0
    sched.observe_flow(flipping, flow(flipping, 61.0, "OUTFLOW", r_w=-5.0, d_t=10.0, theta=1.0))
    assert sched.next([*due, new], 80.0) == flipping  # the confirming poll first
    sched.polled(flipping, 80.0)
    assert sched.next([*due, new], 81.0) == new
    sched.polled(new, 81.0)
    assert sched.next([*due, new], 82.0) == turning


def test_spare_budget_goes_to_the_oldest_with_neutral_weighing_less() -> None:
    sched = Adaptive(600.0, interval=1.0)
    due = ["HK.00001", "HK.00002"]
    sched.next(due, 0.0)
    sched.polled("HK.00001", 0.0)
    sched.observe_flow("HK.00001", flow("HK.00001", 0.0, "NEUTRAL"))
    sched.polled("HK.00002", 1.0)
    sched.observe_flow("HK.00002", flow("HK.00002", 1.0, "INFLOW", r_w=5, d_t=10, theta=1))
    # HK.00001 is older (100 s vs 99 s) but NEUTRAL weighs half: HK.00002 goes first.
    assert sched.next(due, 100.0) == "HK.00002"
    # Until the neutral one is twice as old.
    sched.polled("HK.00002", 100.0)
    assert sched.next(due, 150.0) == "HK.00001"


def test_floor_beats_a_hot_security_when_a_deadline_is_due() -> None:
    sched, due, _now = primed(n=10, max_staleness=13.0)  # 10 x 1 s <= 13 - 2: feasible, tight
    sec = due[9]
    sched.observe_flow(sec, flow(sec, 9.5, "OUTFLOW", r_w=-5.0, d_t=10.0, theta=1.0))
    # HK.00000 was polled at 0.0: its deadline (0 + 13 - 2) leaves no slot to spare.
    assert sched.next(due, 13.0) == due[0]


# -- prediction against the real flow processor -----------------------------------------


def _snapshot(t: float, flip: float, rate: float, base: float = 140000.0) -> Snapshot:
    """Cumulative amounts since the open at T0: net +rate until ``flip``, then -rate."""
    up = min(t, flip) - T0
    down = max(0.0, t - flip)
    return Snapshot(
        security="HK.00700", market="HK", trading_day=DAY, event_ts=t,
        in_super=0.0, in_big=base * (t - T0) + rate * up, in_mid=0.0, in_small=0.0,
        out_super=0.0, out_big=base * (t - T0) + rate * down, out_mid=0.0, out_small=0.0,
    )  # fmt: skip


_PROCESSOR = SecurityProcessor(ThresholdConfig(DetectorParams()))


def _fresh() -> SecurityState:
    return _PROCESSOR.load(None, "HK.00700")


def _process(state: SecurityState, snap: Snapshot) -> dict[str, Any]:
    """The flow record the worker's processing step publishes for ``snap``."""
    (outcome,) = _PROCESSOR.take(state, Polled(snap))
    assert outcome.flow is not None
    return parse_flow(outcome.flow)


@pytest.mark.parametrize("before", [40.0, 150.0, 260.0])
def test_predicted_crossing_is_when_the_processor_flips(before: float) -> None:
    """Polls every 300 s, a flip ``before`` s after the last of them, a poll after the flip
    and one probe: the scheduler's crossing time is the first second at which the real
    flow processor and detector would put a snapshot on the opposite side."""
    flip = T0 + 1200.0 + before
    polls = [T0 + 300.0 * k for k in range(1, 5)] + [flip + 120.0, flip + 130.0]
    sched = Adaptive(600.0, interval=1.0, pad=0.0)
    sec = "HK.00700"
    sched.next([sec], T0)
    state = _fresh()
    for t in polls:
        sched.polled(sec, t)
        sched.observe_flow(sec, _process(state, _snapshot(t, flip, 100000.0)))
    assert state.detector.regime.value == "INFLOW"
    predicted = sched._tracks[sec].want_event
    assert predicted is not None
    actual = None
    for t in range(int(polls[-1]) + 1, int(polls[-1]) + 1200):
        if (
            _process(copy.deepcopy(state), _snapshot(float(t), flip, 100000.0))["regime"]
            == "OUTFLOW"
        ):
            actual = float(t)
            break
    assert actual is not None
    assert actual - 1.0 <= predicted <= actual


def test_long_interval_with_flow_against_the_regime_probes_first() -> None:
    """One post-flip poll after a long gap averages the flip away: probe, then predict."""
    flip = T0 + 1350.0
    sched = Adaptive(600.0, interval=1.0)
    sec = "HK.00700"
    sched.next([sec], T0)
    state = _fresh()
    for t in [T0 + 300.0 * k for k in range(1, 5)] + [T0 + 1500.0]:
        sched.polled(sec, t)
        sched.observe_flow(sec, _process(state, _snapshot(t, flip, 100000.0)))
    track = sched._tracks[sec]
    assert track.want_event == T0 + 1500.0 + sched.probe_gap


def test_steady_flow_wants_nothing_extra() -> None:
    sched = Adaptive(600.0, interval=1.0)
    sec = "HK.00700"
    sched.next([sec], T0)
    state = _fresh()
    for t in [T0 + 300.0 * k for k in range(1, 6)]:
        sched.polled(sec, t)
        sched.observe_flow(sec, _process(state, _snapshot(t, T0 + 99999.0, 100000.0)))
    assert sched._tracks[sec].want_event is None


def test_no_approach_inside_the_cooldown() -> None:
    flip = T0 + 1350.0
    sched = Adaptive(600.0, interval=1.0, cooldown=10_000.0)
    sec = "HK.00700"
    sched.next([sec], T0)
    sched._tracks[sec].last_alert_t = T0  # an alert just went out
    state = _fresh()
    for t in [T0 + 300.0 * k for k in range(1, 5)] + [flip + 60.0, flip + 70.0]:
        sched.polled(sec, t)
        sched.observe_flow(sec, _process(state, _snapshot(t, flip, 100000.0)))
    assert sched._tracks[sec].want_event is None


# -- minute history (capital-flow series of the gateway) ----------------------------------


def _minutes(at: float, flip: float, rate: float) -> tuple[MinuteSeries, list[tuple[float, float]]]:
    """The capital-flow series fetched at ``at`` for ``_snapshot``'s day, as the flow
    processor folds it and as the scheduler gets it: each minute mark since the open,
    the minute in progress as of ``at``."""
    marks = [T0 + 60.0 * k for k in range(int((at - T0) // 60) + 1)]
    rows = []
    levels = []
    for mark in marks:
        snap = _snapshot(mark, flip, rate)
        rows.append(MinuteLevel(mark, 0.0, snap.in_big - snap.out_big, 0.0, 0.0))
        levels.append((mark, snap.in_big - snap.out_big))
    snap = _snapshot(at, flip, rate)
    rows.append(MinuteLevel(marks[-1] + 60.0, 0.0, snap.in_big - snap.out_big, 0.0, 0.0))
    levels.append((at, snap.in_big - snap.out_big))
    series = MinuteSeries("HK.00700", "HK", DAY, int(at * 1000), at, tuple(rows))
    return series, levels


def _crossing_of(state: SecurityState, after: float, flip: float) -> float:
    """The first whole second after ``after`` at which the processor puts a snapshot on
    the opposite side (OUTFLOW)."""
    for t in range(int(after) + 1, int(after) + 1200):
        record = _process(copy.deepcopy(state), _snapshot(float(t), flip, 100000.0))
        if record["regime"] == "OUTFLOW":
            return float(t)
    raise AssertionError("no crossing")


def test_predicted_crossing_with_minute_baselines_is_when_the_processor_flips() -> None:
    """Polls every 300 s and a flip between them; a series fetched right before the poll
    after the flip gives the processor minute baselines, so R_W crosses earlier than
    the snapshots alone allow. The scheduler, told the same minutes, predicts that
    earlier crossing, within a second."""
    flip = T0 + 1350.0
    sec = "HK.00700"
    polls = [T0 + 300.0 * k for k in range(1, 5)] + [flip + 120.0, flip + 130.0]
    with_minutes, without = Adaptive(600.0, interval=1.0, pad=0.0), Adaptive(600.0, pad=0.0)
    state = _fresh()
    for sched in (with_minutes, without):
        sched.next([sec], T0)
    for t in polls:
        ref = 0
        if t == flip + 120.0:
            series, levels = _minutes(t - 1.0, flip, 100000.0)
            _PROCESSOR.take(state, series)
            with_minutes.observe_minutes(sec, DAY, levels)
            ref = series.received_ms
        (outcome,) = _PROCESSOR.take(state, Polled(_snapshot(t, flip, 100000.0), ref))
        assert outcome.flow is not None
        for sched in (with_minutes, without):
            sched.polled(sec, t)
            sched.observe_flow(sec, parse_flow(outcome.flow))
    actual = _crossing_of(state, polls[-1], flip)
    predicted = with_minutes._tracks[sec].want_event
    assert predicted is not None and actual - 1.0 <= predicted <= actual
    late = without._tracks[sec].want_event
    assert late is not None and late > actual + 30.0  # snapshot baselines only: too late


def test_a_series_between_polls_shows_the_reversal_before_the_next_poll() -> None:
    """The last poll was before the flip (nothing against the regime to act on); a series
    fetched 90 s after the flip shows L falling: the scheduler wants the approach poll
    at the crossing the processor will see, without a probe."""
    flip = T0 + 1250.0
    sec = "HK.00700"
    sched = Adaptive(600.0, interval=1.0, pad=0.0)
    sched.next([sec], T0)
    state = _fresh()
    for t in [T0 + 300.0 * k for k in range(1, 5)] + [T0 + 1230.0]:
        sched.polled(sec, t)
        sched.observe_flow(sec, _process(state, _snapshot(t, flip, 100000.0)))
    assert sched._tracks[sec].want_event is None  # the flow is steady so far
    series, levels = _minutes(flip + 90.0, flip, 100000.0)
    sched.observe_minutes(sec, DAY, levels)
    track = sched._tracks[sec]
    assert track.want_class == 1  # APPROACH, not a probe
    _PROCESSOR.take(state, series)  # the processor folds it before the next snapshot
    primed = copy.deepcopy(state)
    _PROCESSOR.take(primed, Polled(_snapshot(flip + 91.0, flip, 100000.0), series.received_ms))
    actual = _crossing_of(primed, flip + 91.0, flip)
    assert track.want_event is not None and actual - 2.0 <= track.want_event <= actual
    # Of another day, or before any flow of the security: nothing changes.
    sched.observe_minutes(sec, "2024-06-04", [(T0 + 86400.0, 0.0)])
    sched.observe_minutes("HK.09988", DAY, levels)
    assert track.want_event is not None and "HK.09988" not in sched._tracks


def test_after_a_late_start_one_poll_and_its_series_plan_the_approach() -> None:
    """A worker started 100 s after a flip: its first poll, with the series fetched just
    before it, is still on the old side; the series' last minutes give L's rate, so the
    approach poll is planned at the crossing the processor will see (not after a second
    routine poll)."""
    flip = T0 + 6000.0
    start = flip + 100.0
    sec = "HK.00700"
    sched = Adaptive(600.0, interval=1.0, pad=0.0)
    sched.next([sec], 0.0)
    state = _fresh()
    series, levels = _minutes(start - 1.0, flip, 100000.0)
    _PROCESSOR.take(state, series)
    sched.observe_minutes(sec, DAY, levels)
    (outcome,) = _PROCESSOR.take(
        state, Polled(_snapshot(start, flip, 100000.0), series.received_ms)
    )
    assert outcome.flow is not None
    record = parse_flow(outcome.flow)
    assert record["baseline"] == "minute" and record["regime"] == "INFLOW"
    sched.polled(sec, 1.0)
    sched.observe_flow(sec, record)
    track = sched._tracks[sec]
    actual = _crossing_of(state, start, flip)
    assert track.want_class == 1 and track.want_event is not None
    assert actual - 2.0 <= track.want_event <= actual


def test_never_polled_ones_whose_history_is_in_go_first() -> None:
    """A worker started after the open: the history budget fetches from the end of the
    list, the first polls take what has its minutes, else go from the front (no race)."""
    sched = Adaptive(600.0, interval=1.0)
    due = [f"HK.{i:05d}" for i in range(1, 6)]
    assert sched.next(due, 0.0) == "HK.00001"  # no series yet: from the front
    sched.polled("HK.00001", 0.1)
    sched.observe_minutes("HK.00005", DAY, [(T0, 0.0)])
    assert sched.next(due, 1.0) == "HK.00005"
    sched.polled("HK.00005", 1.1)
    sched.observe_minutes("HK.00004", DAY, [(T0, 0.0)])
    sched.observe_minutes("HK.00003", DAY, [(T0, 0.0)])
    assert sched.next(due, 2.0) == "HK.00003"  # in list order among those
    sched.polled("HK.00003", 2.1)
    assert sched.next(due, 3.0) == "HK.00004"
    sched.polled("HK.00004", 3.1)
    assert sched.next(due, 4.0) == "HK.00002"
    assert "HK.00009" not in sched._tracks  # a series of one never due here: not kept
    sched.observe_minutes("HK.00009", DAY, [(T0, 0.0)])
    assert "HK.00009" not in sched._tracks


# -- clocks, determinism, factory -------------------------------------------------------


def test_event_time_running_faster_than_the_poller_clock() -> None:
    """A simulator at speed 20: 3 event seconds of min_gap are 0.15 poller seconds."""
    sched = Adaptive(30.0, interval=0.05)
    due = [f"HK.{i:05d}" for i in range(5)]
    now = 0.0
    for _step in range(40):
        sec = sched.next(due, now)
        assert sec is not None
        sched.polled(sec, now)
        sched.observe_flow(sec, flow(sec, T0 + 20 * now, "INFLOW", r_w=5, d_t=10, theta=1))
        now += 0.05
    target = due[2]
    last = sched._tracks[target].last_poll
    assert last is not None
    sched.observe_flow(target, flow(target, T0 + 20 * last + 1, "OUTFLOW", r_w=-5, d_t=10, theta=1))
    assert sched.next(due, last + 0.1) != target  # 2 event seconds: too soon
    assert sched.next(due, last + 0.2) == target  # 4 event seconds


def _run(sched: Adaptive, seed: int) -> list[str]:
    due = [f"HK.{i:05d}" for i in range(8)]
    picked = []
    for step in range(200):
        now = float(step)
        sec = sched.next(due, now)
        assert sec is not None
        picked.append(sec)
        sched.polled(sec, now + 0.3)
        regime = ["INFLOW", "OUTFLOW"][(step * seed // 7) % 2]
        sched.observe_flow(sec, flow(sec, now + 0.3, regime, r_w=step % 5 - 2.0, d_t=4.0))
    return picked


def test_same_inputs_same_choices() -> None:
    assert _run(Adaptive(20.0, interval=1.0), 3) == _run(Adaptive(20.0, interval=1.0), 3)


def test_factory_and_poller_default() -> None:
    assert isinstance(make_scheduler("round-robin"), RoundRobin)
    adaptive = make_scheduler("adaptive", max_staleness=120.0, interval=1.0, confirm=3)
    assert isinstance(adaptive, Adaptive)
    assert adaptive.max_staleness == 120.0 and adaptive.confirm == 3
    with pytest.raises(ValueError, match="unknown schedule"):
        make_scheduler("random")
    with pytest.raises(ValueError, match="max_staleness"):
        make_scheduler("adaptive", max_staleness=0.0)
    assert isinstance(Poller.__init__.__kwdefaults__["scheduler"], type(None))


def test_flows_read_before_polling_here_are_kept() -> None:
    """A standby worker follows the flows; once it polls, a pending flip goes first."""
    sched = Adaptive(600.0, interval=1.0)
    due = [f"HK.{i:05d}" for i in range(5)]
    sec = due[3]
    sched.observe_flow(sec, flow(sec, 1.0, "INFLOW", r_w=5.0, d_t=10.0, theta=1.0))
    sched.observe_flow(sec, flow(sec, 2.0, "OUTFLOW", r_w=-5.0, d_t=10.0, theta=1.0))
    assert sched.pending() == [sec]
    assert sched.next(due, 10.0) == sec


def test_a_flow_without_baseline_pairs_the_clocks_and_changes_nothing_else() -> None:
    sched = Adaptive(600.0, interval=1.0)
    sec = "HK.00700"
    sched.next([sec], T0)
    sched.polled(sec, 100.0)
    none = {
        "security": sec, "trading_day": DAY, "event_ts": T0 + 5400.0, "window_s": 300.0,
        "large_net": 1e7, "turnover": 1e9, "regime": "NEUTRAL", "threshold": None,
        "change": dict.fromkeys(("super", "big", "mid", "small", "large", "turnover")),
        "baseline": "none", "baseline_ts": None,
    }  # fmt: skip
    sched.observe_flow(sec, none)
    track = sched._tracks[sec]
    assert track.awaiting is None and sched._pairs[-1] == (100.0, T0 + 5400.0)
    assert track.regime == "NEUTRAL" and track.base is None and track.last_t is None
