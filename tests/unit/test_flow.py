"""FlowState: R_W by hand, duplicates, stale, day reset, corrections, persistence."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.market import day_sessions, session_open, trading_seconds
from streams.processing.flow import FlowPoint, FlowState, Skip, Snapshot

DAY = "2026-11-25"
T0 = 1_795_570_200.0  # 2026-11-25T01:30:00Z


def snap(
    t: float,
    in_super: float | None = 0.0,
    in_big: float = 0.0,
    in_mid: float = 0.0,
    in_small: float = 0.0,
    out_super: float | None = 0.0,
    out_big: float = 0.0,
    out_mid: float = 0.0,
    out_small: float = 0.0,
    day: str = DAY,
    security: str = "HK.00700",
) -> Snapshot:
    return Snapshot(
        security=security,
        market=security.split(".")[0],
        trading_day=day,
        event_ts=t,
        in_super=in_super,
        in_big=in_big,
        in_mid=in_mid,
        in_small=in_small,
        out_super=out_super,
        out_big=out_big,
        out_mid=out_mid,
        out_small=out_small,
    )


def big(t: float, inflow: float, outflow: float = 0.0, day: str = DAY) -> Snapshot:
    """A snapshot whose only non-zero amounts are in_big / out_big."""
    return snap(t, in_big=inflow, out_big=outflow, day=day)


def run(state: FlowState, snaps: list[Snapshot]) -> list[FlowPoint | None]:
    return [state.update(s) for s in snaps]


def test_first_snapshot_of_day_uses_zero_baseline() -> None:
    state = FlowState(window=300)
    p = state.update(snap(T0, in_super=10, in_big=100, out_big=30, in_mid=7, out_small=2))
    assert p is not None
    assert p.net_super == 10 and p.net_big == 70 and p.net_mid == 7 and p.net_small == -2
    assert p.large_net == 80
    assert p.turnover == 149
    # The day started inside the window: everything so far is the change.
    assert p.change_large == 80 and p.change_turnover == 149
    assert p.change == {
        "super": 10,
        "big": 70,
        "mid": 7,
        "small": -2,
        "large": 80,
        "turnover": 149,
    }
    assert p.snapshots_in_window == 1
    assert p.window_s == 300.0


def test_r_w_by_hand() -> None:
    state = FlowState(window=300)
    points = run(
        state,
        [
            big(T0, 100),  # L=100
            big(T0 + 100, 250, 50),  # L=200
            big(T0 + 300, 300, 200),  # L=100; baseline at T0 (L=100) -> 0
            big(T0 + 350, 600, 200),  # L=400; baseline at T0+0 still (<= T0+50) -> 300
            big(T0 + 400, 600, 300),  # L=300; baseline at T0+100 (L=200) -> 100
            big(T0 + 1000, 600, 300),  # L=300; baseline T0+400 (L=300) -> 0
        ],
    )
    assert [p.change_large for p in points if p] == [100, 200, 0, 300, 100, 0]
    assert [p.large_net for p in points if p] == [100, 200, 100, 400, 300, 300]
    # turnover: 100, 300, 500, 800, 900, 900; dT baseline as above
    assert [p.change_turnover for p in points if p] == [100, 300, 400, 700, 600, 0]
    assert [p.snapshots_in_window for p in points if p] == [1, 2, 2, 3, 3, 1]


def test_baseline_exactly_at_t_minus_w_is_used() -> None:
    state = FlowState(window=60)
    state.update(big(T0, 10))
    p = state.update(big(T0 + 60, 25))
    assert p is not None and p.change_large == 15 and p.snapshots_in_window == 1


def test_day_started_inside_window_keeps_zero_baseline() -> None:
    state = FlowState(window=300)
    points = run(state, [big(T0, 50), big(T0 + 120, 80), big(T0 + 299, 90)])
    assert [p.change_large for p in points if p] == [50, 80, 90]


def test_duplicate_is_dropped_and_counted() -> None:
    state = FlowState(window=300)
    assert state.update(big(T0, 50)) is not None
    assert state.update(big(T0, 50)) is None
    assert state.duplicates == 1
    # Same amounts but later: not a duplicate (the window moves).
    assert state.update(big(T0 + 10, 50)) is not None
    # Same time, different amounts: a newer reading, published.
    p = state.update(big(T0 + 10, 60))
    assert p is not None and p.change_large == 60 and p.snapshots_in_window == 2


def test_out_of_order_is_dropped_and_counted() -> None:
    state = FlowState(window=300)
    state.update(big(T0 + 100, 50))
    assert state.update(big(T0 + 50, 40)) is None
    assert state.update(big(T0 + 99, 70)) is None
    assert state.stale == 2
    p = state.update(big(T0 + 200, 80))
    assert p is not None and p.change_large == 80


def test_new_day_restarts_from_zero_and_old_day_is_stale() -> None:
    state = FlowState(window=300)
    run(state, [big(T0, 1000), big(T0 + 60, 5000)])
    p = state.update(big(T0 + 86_400, 70, day="2026-11-26"))
    assert p is not None
    assert p.trading_day == "2026-11-26"
    assert p.change_large == 70 and p.change_turnover == 70 and p.snapshots_in_window == 1
    assert state.update(big(T0 + 90_000, 9999, day=DAY)) is None
    assert state.stale == 1


def test_decreasing_amounts_are_a_new_baseline_not_a_spike() -> None:
    state = FlowState(window=300)
    points = run(
        state,
        [
            big(T0, 1000, 200),  # L=800, R=800
            big(T0 + 10, 1100, 200),  # L=900, R=900
            big(T0 + 20, 0, 0),  # reset: raw L=0, adjusted stays 900
            big(T0 + 30, 50, 20),  # +30 genuine -> adjusted 930
            big(T0 + 320, 60, 20),  # baseline T0+20 (adj 900) -> adj 940 - 900 = 40
        ],
    )
    got = [p for p in points if p]
    assert [p.large_net for p in got] == [800, 900, 0, 30, 40]
    assert [p.change_large for p in got] == [800, 900, 900, 930, 40]
    assert [p.change_turnover for p in got] == [1200, 1300, 1300, 1370, 80]
    assert state.corrections == 1


def test_partial_correction_rebases_only_the_corrected_amount() -> None:
    state = FlowState(window=300)
    run(state, [big(T0, 1000, 500)])  # L=500
    # out_big corrected down by 100 while in_big grew by 10: out_big's step is zero,
    # in_big's genuine +10 counts (the correction is per amount).
    p = state.update(big(T0 + 5, 1010, 400))
    assert p is not None
    assert p.large_net == 610
    assert p.change_large == 510  # not 610: no spike from the correction
    assert p.change_turnover == 1510  # T's step is in_big's +10 only
    assert state.corrections == 1
    q = state.update(big(T0 + 10, 1020, 450))  # later steps of out_big count normally
    assert q is not None and q.change_large == 510 + 10 - 50


def test_genuine_flow_in_other_classes_is_kept_through_a_correction() -> None:
    state = FlowState(window=300)
    state.update(snap(T0, in_super=100, in_big=1000, in_mid=50, out_small=20))
    # in_mid is corrected down; super, big and small keep their genuine steps.
    p = state.update(snap(T0 + 10, in_super=400, in_big=1500, in_mid=10, out_small=70))
    assert p is not None
    assert p.change_super == 400 and p.change_big == 1500
    assert p.change_mid == 50  # re-based: the drop from 50 to 10 counts as zero
    assert p.change_small == -70
    assert p.change_large == 1900
    r = state.update(snap(T0 + 20, in_super=400, in_big=1500, in_mid=30, out_small=70))
    assert r is not None and r.change_mid == 70  # +20 after the correction counts


def test_fold_tells_stale_from_duplicate() -> None:
    state = FlowState(window=300)
    assert isinstance(state.fold(big(T0 + 100, 50)), FlowPoint)
    assert state.fold(big(T0 + 100, 50)) is Skip.DUPLICATE
    assert state.fold(big(T0 + 50, 50)) is Skip.STALE  # late, even with equal amounts
    assert state.fold(big(T0 + 50, 10, day="2026-11-24")) is Skip.STALE  # an earlier day
    assert (state.duplicates, state.stale) == (1, 2)


def test_absent_super_amounts_carry_the_last_value_and_make_no_step() -> None:
    state = FlowState(window=300)
    first = state.update(snap(T0, in_super=None, out_super=None, in_big=10))
    assert first is not None and first.net_super == 0 and first.change_super == 0
    state.update(snap(T0 + 10, in_super=500, out_super=100, in_big=20))
    p = state.update(snap(T0 + 20, in_super=None, out_super=None, in_big=30))
    assert p is not None
    assert p.net_super == 400  # carried, not 0
    assert p.change_super == 400 and p.change_large == 430
    assert state.corrections == 0  # an absence is not a drop to zero
    q = state.update(snap(T0 + 30, in_super=600, out_super=100, in_big=30))
    assert q is not None and q.change_super == 500
    # A new day starts the carried value at 0 again.
    r = state.update(snap(T0 + 86_400, in_super=None, out_super=None, day="2026-11-26"))
    assert r is not None and r.net_super == 0 and r.change_super == 0


def test_duplicate_check_uses_carried_super_amounts() -> None:
    state = FlowState(window=300)
    state.update(snap(T0, in_super=5, in_big=10))
    assert state.fold(snap(T0, in_super=None, in_big=10)) is Skip.DUPLICATE


def test_negative_amount_is_rejected_not_a_correction() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        big(T0, -1.0)
    with pytest.raises(ValueError, match=">= 0"):
        snap(T0, out_super=-5.0)


def test_version_1_state_continues_without_a_jump() -> None:
    """A state stored before per-amount corrections (offsets of the five series)."""
    v1 = {
        "v": 1, "window": 300.0, "max_history": 4096, "trading_day": DAY,
        "last_ts": T0 + 10, "last_amounts": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        # a reset to zero after L reached 900 and T 1300 (see the test above)
        "offset": [0.0, 900.0, 0.0, 0.0, 1300.0],
        "history": [[T0, 0.0, 800.0, 0.0, 0.0, 1200.0], [T0 + 10, 0.0, 900.0, 0.0, 0.0, 1300.0]],
        "truncated": False, "stale": 0, "duplicates": 0, "corrections": 1,
    }  # fmt: skip
    state = FlowState.from_dict(v1)
    p = state.update(big(T0 + 30, 50, 20))
    assert p is not None and p.change_large == 930 and p.change_turnover == 1370
    assert FlowState.from_dict(state.to_dict()).to_dict() == state.to_dict()


def test_truncated_history_uses_oldest_entry() -> None:
    state = FlowState(window=1000, max_history=3)
    points = run(state, [big(T0 + i, 10 * (i + 1)) for i in range(5)])
    assert state.truncated
    last = points[-1]
    assert last is not None
    assert len(state.history) == 3
    assert last.change_large == 50 - 30  # oldest kept entry is T0+2 with L=30
    assert last.snapshots_in_window == 2


def test_bad_snapshot_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="trading_day"):
        big(T0, 1, day="2026/11/25")
    with pytest.raises(ValueError, match="finite"):
        big(T0, float("nan"))
    with pytest.raises(ValueError, match="window"):
        FlowState(window=0)


def test_state_round_trip_through_json() -> None:
    state = FlowState(window=120)
    run(state, [big(T0, 10), big(T0, 10), big(T0 + 50, 5), big(T0 + 100, 30), big(T0 + 10, 1)])
    restored = FlowState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert restored.to_dict() == state.to_dict()
    nxt = big(T0 + 200, 50)
    assert restored.update(nxt) == state.update(nxt)
    with pytest.raises(ValueError, match="version"):
        FlowState.from_dict({**state.to_dict(), "v": 99})


# -- properties -----------------------------------------------------------------------

AMOUNT = st.integers(min_value=0, max_value=10**9).map(float)


@st.composite
def sequences(draw: Any, resets: bool = False) -> list[Snapshot]:
    """Plausible snapshot streams: time goes forward (with repeats), amounts grow;
    optionally with duplicates, stale records, corrections and a day change."""
    n = draw(st.integers(min_value=1, max_value=40))
    t = T0
    amounts = [0.0] * 8
    day = DAY
    out: list[Snapshot] = []
    for _ in range(n):
        kind = draw(st.sampled_from(["step", "step", "step", "dup", "stale", "reset", "day"]))
        if kind == "dup" and out:
            out.append(out[-1])
            continue
        if kind == "stale" and out:
            out.append(big(t - draw(st.integers(1, 100)), 1.0, day=day))
            continue
        if kind == "day" and resets:
            day = "2026-11-26"
            t += 50_000
            amounts = [0.0] * 8
        elif kind == "reset" and resets:
            amounts = [a * draw(st.sampled_from([0.0, 0.5])) for a in amounts]
        else:
            amounts = [a + draw(AMOUNT) for a in amounts]
        t += draw(st.sampled_from([0, 1, 7, 60, 150, 299, 300, 301, 900]))
        out.append(Snapshot("HK.00700", "HK", day, t, *amounts))
    return out


def brute_force(snaps: list[Snapshot], window: float) -> list[float | str | None]:
    """R_W of L over the full accepted list (no corrections in the input): the latest
    level at or before t - W, the open counting as a zero level, "none" when that level
    is more than W of trading time before t - W."""
    accepted: list[Snapshot] = []
    results: list[float | str | None] = []
    for s in snaps:
        if accepted and (
            s.event_ts < accepted[-1].event_ts
            or (s.event_ts == accepted[-1].event_ts and s.amounts == accepted[-1].amounts)
        ):
            results.append(None)
            continue
        accepted.append(s)

        def large(x: Snapshot) -> float:
            return (x.in_super - x.out_super) + (x.in_big - x.out_big)

        cutoff = s.event_ts - window
        opened = session_open(s.market, s.trading_day)
        assert opened is not None
        base = [x for x in accepted if x.event_ts <= cutoff]
        if base:
            level_ts, base_l = base[-1].event_ts, large(base[-1])
        elif cutoff < opened:
            results.append(large(s))
            continue
        else:
            level_ts, base_l = opened, 0.0
        if trading_seconds(day_sessions(s.market, s.trading_day), level_ts, cutoff) > window:
            results.append("none")
        else:
            results.append(large(s) - base_l)
    return results


@settings(max_examples=100, deadline=None)
@given(sequences(), st.sampled_from([1.0, 60.0, 300.0]))
def test_monotone_inputs_match_brute_force(snaps: list[Snapshot], window: float) -> None:
    state = FlowState(window=window)
    points = run(state, snaps)
    got = [None if p is None else p.change_large if p.has_change else "none" for p in points]
    assert got == brute_force(snaps, window)


@settings(max_examples=100, deadline=None)
@given(sequences(resets=True), st.integers(min_value=0, max_value=40))
def test_replay_from_restored_state_is_identical(snaps: list[Snapshot], cut: int) -> None:
    full = run(FlowState(), snaps)
    cut = min(cut, len(snaps))
    first = FlowState()
    head = run(first, snaps[:cut])
    restored = FlowState.from_dict(orjson.loads(orjson.dumps(first.to_dict())))
    assert restored.to_dict() == first.to_dict()
    assert head + run(restored, snaps[cut:]) == full


@settings(max_examples=150, deadline=None)
@given(sequences(resets=True), st.sampled_from([30.0, 300.0]))
def test_corrections_never_make_a_negative_spike(snaps: list[Snapshot], window: float) -> None:
    """R_W(L) >= -(genuine growth of out_super + out_big over the window's steps).

    Corrections are per amount: a step in which out_super or out_big grew counts that
    growth as genuine large outflow; a step in which one of them fell is a correction
    of that amount and is allowed no negative contribution from it.
    """
    state = FlowState(window=window)
    day_snaps: list[Snapshot] = []  # accepted, current day
    for s in snaps:
        p = state.update(s)
        if p is None:
            continue
        if day_snaps and s.trading_day != day_snaps[-1].trading_day:
            day_snaps = []
        day_snaps.append(s)  # a same-time reading replaces in history, but is still a step
        base = [k for k, x in enumerate(day_snaps) if x.event_ts <= s.event_ts - window]
        start = base[-1] if base else -1
        allowance = 0.0
        for k in range(start + 1, len(day_snaps)):
            cur = day_snaps[k]
            if k == 0:
                allowance += cur.out_super + cur.out_big
                continue
            before = day_snaps[k - 1]
            for name in ("out_super", "out_big"):  # per amount: a drop contributes nothing
                allowance += max(getattr(cur, name) - getattr(before, name), 0.0)
        assert p.change_large >= -allowance - 1e-6 * max(1.0, allowance)
        assert p.change_turnover >= 0


@st.composite
def corrected_days(draw: Any) -> list[Snapshot]:
    """One day, time strictly forward; each amount on its own grows, stays, or is now
    and then corrected down; the super amounts are sometimes absent (then unchanged)."""
    n = draw(st.integers(min_value=1, max_value=30))
    t = T0
    amounts = [0.0] * 8
    out: list[Snapshot] = []
    for _ in range(n):
        absent = draw(st.integers(0, 3)) == 0
        for i in range(8):
            if absent and i in (0, 4):
                continue
            kind = draw(st.sampled_from(["grow", "grow", "grow", "same", "down"]))
            if kind == "grow":
                amounts[i] += draw(AMOUNT)
            elif kind == "down":
                amounts[i] = float(int(amounts[i] * draw(st.sampled_from([0.0, 0.3, 0.9]))))
        t += draw(st.sampled_from([1, 7, 60, 150, 299, 300, 301, 900]))
        values: list[float | None] = list(amounts)
        if absent:
            values[0] = values[4] = None
        out.append(Snapshot("HK.00700", "HK", DAY, t, *values))  # type: ignore[arg-type]
    return out


def plain_change(snaps: list[Snapshot], k: int, window: float, series: Any) -> float:
    """R_W by the plain definition over accepted snapshots 0..k of one day."""
    s = snaps[k]
    base = [x for x in snaps[: k + 1] if x.event_ts <= s.event_ts - window]
    return float(series(s) - (series(base[-1]) if base else 0.0))


@settings(max_examples=150, deadline=None)
@given(corrected_days(), st.sampled_from([30.0, 300.0]))
def test_per_amount_corrections(snaps: list[Snapshot], window: float) -> None:
    """T never decreases; a corrected amount's step is zero, every other amount's step
    is its raw step; classes never corrected keep exactly their plain R_W."""
    state = FlowState(window=window)
    prev_raw = prev_adj = None
    prev_t = 0.0
    corrected: set[int] = set()
    effective: list[Snapshot] = []  # with absent super amounts filled in, as the flow sees them
    for s in snaps:
        p = state.update(s)
        assert p is not None  # time moves forward: nothing is stale or a duplicate here
        raw, adj = state.last_amounts, state.adjusted
        assert raw is not None and adj is not None
        effective.append(Snapshot(s.security, s.market, s.trading_day, s.event_ts, *raw.values()))
        if prev_raw is not None and prev_adj is not None:
            assert state.history[-1].turnover >= prev_t
            steps = zip(
                raw.values(), prev_raw.values(), adj.values(), prev_adj.values(), strict=True
            )
            for i, (r, pr, a, pa) in enumerate(steps):
                if r < pr:
                    corrected.add(i)
                    assert a == pa  # re-based: the step counts as zero
                else:
                    assert a >= pa
                    assert a - pa == pytest.approx(r - pr, rel=1e-9, abs=1e-6 * max(1.0, a))
        assert p.change_turnover >= 0
        k = len(effective) - 1
        for i_in, c in enumerate(("super", "big", "mid", "small")):
            i_out = i_in + 4
            if p.has_change and i_in not in corrected and i_out not in corrected:

                def net(x: Snapshot, c: str = c) -> float:
                    return float(getattr(x, f"in_{c}") - getattr(x, f"out_{c}"))

                assert getattr(p, f"change_{c}") == plain_change(effective, k, window, net)
        prev_raw, prev_adj, prev_t = raw, adj, state.history[-1].turnover


@settings(max_examples=100, deadline=None)
@given(sequences(), st.sampled_from([1.0, 60.0, 300.0]))
def test_without_corrections_every_change_is_the_plain_definition(
    snaps: list[Snapshot], window: float
) -> None:
    state = FlowState(window=window)
    accepted: list[Snapshot] = []
    for s in snaps:
        p = state.update(s)
        if p is None:
            continue
        if accepted and accepted[-1].event_ts == s.event_ts:
            accepted[-1] = s  # the later reading at the same time replaces the earlier
        else:
            accepted.append(s)
        if not p.has_change:
            continue  # a hole: test_monotone_inputs_match_brute_force checks when
        k = len(accepted) - 1
        for c in ("super", "big", "mid", "small"):

            def net(x: Snapshot, c: str = c) -> float:
                return float(getattr(x, f"in_{c}") - getattr(x, f"out_{c}"))

            assert getattr(p, f"change_{c}") == plain_change(accepted, k, window, net)

        def turnover(x: Snapshot) -> float:
            total = 0.0
            for a in x.amounts:
                total += a or 0.0
            return total

        assert p.change_turnover == plain_change(accepted, k, window, turnover)
    assert state.corrections == 0
