"""Minute history in the flow processor: baselines, warm start, gap fill, topic order.

A synthetic day of HK.00700 (2026-11-25, open 09:30 HKT) with piecewise-linear flows:
large orders flow in, turn to selling at FLIP_1, back to buying at FLIP_2; turnover
grows at a constant rate, so the turnover interpolated at a minute is exact. Snapshots
are taken on minute marks, so a minute row and a snapshot of the same instant carry
the same numbers: a worker fed minute history must then alert exactly as one that
polled since the open.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.market import format_local_time
from streams.offline.backtest import load_recording, parameter_grid, run
from streams.offline.recording import read_recording, to_json_line
from streams.pb.capflow.v1.capital_flow_pb2 import CapitalFlowRow, CapitalFlowSeries
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pipeline.processor import (
    DecodeError,
    Incoming,
    Outcome,
    Polled,
    Result,
    SecurityProcessor,
    SecurityState,
)
from streams.processing.backfill import MAX_WAITING, Inbox, MinuteSeries
from streams.processing.events import parse_alert, parse_flow
from streams.processing.flow import Baseline, FlowState, MinuteLevel, Snapshot
from streams.processing.thresholds import DetectorParams, ThresholdConfig

SEC = "HK.00700"
DAY = "2026-11-25"
OPEN = 1_795_570_200.0  # 09:30 HKT
LUNCH, AFTERNOON, CLOSE = OPEN + 9000, OPEN + 12600, OPEN + 23400  # 12:00, 13:00, 16:00
FLIP_1 = OPEN + 3600 + 480  # 10:38: large orders turn to selling
FLIP_2 = OPEN + 5 * 3600 + 900  # 14:45: and back to buying
PARAMS = DetectorParams(window=300, theta_abs=0, theta_rel=0.05, confirm=2, cooldown=600)
RATE = 60_000.0  # large net per trading second, before the first flip
TURNOVER = 900_000.0  # turnover per trading second


def trading(t: float) -> float:
    """Trading seconds since the open at t (lunch and after the close do not count)."""
    morning = min(max(t, OPEN), LUNCH) - OPEN
    afternoon = min(max(t, AFTERNOON), CLOSE) - AFTERNOON
    return morning + afternoon


def large_net(t: float) -> float:
    up = trading(min(t, FLIP_1))
    down = trading(min(t, FLIP_2)) - trading(FLIP_1) if t > FLIP_1 else 0.0
    again = trading(t) - trading(FLIP_2) if t > FLIP_2 else 0.0
    return RATE * (up - 1.5 * down + 2.0 * again)


def amounts(t: float) -> dict[str, float]:
    """Cumulative amounts at t: L split 40/60 over super/big, small flows balanced."""
    traded = TURNOVER * trading(t)
    net = large_net(t)
    large_in = (traded * 0.3 + net) / 2
    large_out = (traded * 0.3 - net) / 2
    small = traded * 0.35
    return {
        "in_super": 0.4 * large_in,
        "in_big": 0.6 * large_in,
        "in_mid": 0.0,
        "in_small": small,
        "out_super": 0.4 * large_out,
        "out_big": 0.6 * large_out,
        "out_mid": 0.0,
        "out_small": small,
    }


def snap(t: float) -> Snapshot:
    return Snapshot(SEC, "HK", DAY, t, **amounts(t))


def series(at: float, received_ms: int | None = None) -> MinuteSeries:
    """OpenD's capital flow at ``at``: a row per trading minute since the open (the
    open row zeros), the minute in progress partial, valid as of ``at``."""
    rows = []
    minute = OPEN
    while minute <= at + 60 and minute <= CLOSE:
        if not LUNCH < minute < AFTERNOON:
            a = amounts(min(minute, at))
            rows.append(
                MinuteLevel(
                    minute,
                    a["in_super"] - a["out_super"],
                    a["in_big"] - a["out_big"],
                    0.0,
                    0.0,
                )
            )
        if minute > at:
            break
        minute += 60
    received = int(at * 1000) + 500 if received_ms is None else received_ms
    return MinuteSeries(SEC, "HK", DAY, received, at, tuple(rows))


def processor() -> SecurityProcessor:
    return SecurityProcessor(ThresholdConfig(PARAMS), clock=lambda: CLOSE)


def feed(
    proc: SecurityProcessor, state: SecurityState, records: Iterable[Incoming]
) -> list[Outcome]:
    out: list[Outcome] = []
    for record in records:
        out.extend(proc.take(state, record))
    return out


def alerts_of(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    return [parse_alert(payload)["data"] for o in outcomes for payload, _ in o.alerts()]


def flows_of(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    return [parse_flow(o.flow) for o in outcomes if o.flow is not None]


def minutes(start: float, end: float) -> list[float]:
    """Minute marks in [start, end) during trading hours."""
    return [t for t in range(int(start), int(end), 60) if trading(t + 1) > trading(t)]


def continuous() -> list[Outcome]:
    proc = processor()
    return feed(proc, proc.load(None, SEC), [Polled(snap(t)) for t in minutes(OPEN, CLOSE)])


# -- baselines ------------------------------------------------------------------------------


def test_a_start_after_the_open_has_no_baseline_instead_of_the_whole_day() -> None:
    proc = processor()
    state = proc.load(None, SEC)
    (first,) = proc.take(state, Polled(snap(OPEN + 5400)))  # 11:00
    flow = parse_flow(first.flow or b"")
    assert flow["baseline"] == "none" and flow["baseline_ts"] is None
    assert set(flow["change"].values()) == {None} and flow["threshold"] is None
    assert flow["regime"] == "NEUTRAL"
    assert flow["large_net"] == pytest.approx(large_net(OPEN + 5400))  # published as read


def test_inside_the_first_window_the_open_is_the_origin() -> None:
    proc = processor()
    state = proc.load(None, SEC)
    (early,) = proc.take(state, Polled(snap(OPEN + 120)))
    flow = parse_flow(early.flow or b"")
    assert flow["baseline"] == "origin" and flow["change"]["large"] == pytest.approx(
        large_net(OPEN + 120)
    )


def test_the_open_stays_a_baseline_for_w_of_trading_before_t_minus_w() -> None:
    """A first snapshot up to 2W after the open measures against the open (R_W spans at
    most 2W); later, nothing."""
    for offset, kind in ((599.0, "origin"), (600.0, "origin"), (601.0, "none")):
        proc = processor()
        (out,) = proc.take(proc.load(None, SEC), Polled(snap(OPEN + offset)))
        assert parse_flow(out.flow or b"")["baseline"] == kind, offset


def test_a_hole_longer_than_w_of_trading_has_no_baseline_but_lunch_is_no_hole() -> None:
    flow = FlowState(window=300)
    flow.update(snap(OPEN + 600))
    p = flow.update(snap(OPEN + 600 + 601 + 300))  # the level is 601 s before t - W
    assert p is not None and p.baseline is Baseline.NONE
    flow = FlowState(window=300)
    flow.update(snap(LUNCH - 30))
    p = flow.update(snap(AFTERNOON + 60))  # 90 s of trading since the last snapshot
    assert p is not None and p.baseline is Baseline.SNAPSHOT and p.baseline_ts == LUNCH - 30


def test_a_minute_level_is_a_baseline_with_interpolated_turnover() -> None:
    flow = FlowState(window=300)
    flow.fold_minutes("HK", DAY, series(OPEN + 5400).rows, OPEN + 5400)
    p = flow.update(snap(OPEN + 5430))
    assert p is not None and p.baseline is Baseline.MINUTE
    assert p.baseline_ts == OPEN + 5100  # the minute at t - W: 10:55
    assert p.change_large == pytest.approx(large_net(OPEN + 5430) - large_net(OPEN + 5100))
    # T at 10:55 interpolated between the open (0) and 11:00:30, exact for a steady rate
    assert p.change_turnover == pytest.approx(TURNOVER * 330, rel=1e-9)


def test_the_minute_in_progress_counts_as_of_last_valid_time() -> None:
    flow = FlowState(window=300)
    at = OPEN + 5400 + 25  # 11:00:25: the 11:01 row holds the value as of 11:00:25
    flow.fold_minutes("HK", DAY, series(at).rows, at)
    assert flow.minutes[-1].ts == at
    assert flow.minutes[-1].large == pytest.approx(large_net(at))


# -- warm start -----------------------------------------------------------------------------


@pytest.mark.parametrize("start", [OPEN + 5400, OPEN + 4200, OPEN + 6 * 3600])
def test_a_warm_start_alerts_exactly_as_a_continuous_run(start: float) -> None:
    """A worker that starts at ``start`` (11:00, 10:40 inside the first reversal's
    confirmation, 15:30) with the day's minute history sends from then on exactly the
    alerts of one that ran since the open, no more, no fewer."""
    want = [a for a in alerts_of(continuous()) if a["event_ts"] >= start]
    assert want or start > FLIP_2
    proc = processor()
    state = proc.load(None, SEC)
    history = series(start - 1)
    records: list[Incoming] = [history]
    records += [Polled(snap(t), history.received_ms) for t in minutes(start, CLOSE)]
    got = alerts_of(feed(proc, state, records))
    assert got == want
    assert all(not a["found_in_history"] for a in got)


def test_without_history_a_late_start_misses_nothing_it_should_not_send() -> None:
    """No minute history: the first W of trading after the start has no R_W, so no alert
    can come from the whole day's flow."""
    proc = processor()
    state = proc.load(None, SEC)
    outs = feed(proc, state, [Polled(snap(t)) for t in minutes(OPEN + 5400, CLOSE)])
    flows = flows_of(outs)
    assert [f["baseline"] for f in flows[:5]] == ["none"] * 5  # 11:00 .. 11:04
    assert flows[5]["baseline"] == "snapshot"  # 11:05: the 11:00 snapshot is at t - W
    assert all(a["event_ts"] > OPEN + 5400 + 300 for a in alerts_of(outs))


def test_reversals_before_the_first_snapshot_start_the_cooldown_unpublished() -> None:
    """Started 5 minutes after the first reversal's alert: it is the past (not sent),
    but it starts the cooldown clock as if it had been sent."""
    full = alerts_of(continuous())
    first = full[0]
    start = first["event_ts"] + 300
    proc = processor()
    state = proc.load(None, SEC)
    history = series(start - 1)
    outs = feed(proc, state, [history, Polled(snap(start), history.received_ms)])
    assert alerts_of(outs) == []
    assert state.detector.last_alert_ts == first["event_ts"]
    later = [Polled(snap(t), history.received_ms) for t in minutes(start + 60, CLOSE)]
    assert alerts_of(feed(proc, state, later)) == full[1:]


def test_a_snapshot_first_warm_start_publishes_what_its_own_snapshots_confirmed() -> None:
    """The first snapshots come before the history (no baseline); once it is folded, the
    regime is set from the minutes and a reversal confirmed at those first snapshots is
    published once, marked found in history."""
    cont = [a for a in alerts_of(continuous())]
    confirmed = cont[0]["event_ts"]  # the first reversal's confirming snapshot
    start = confirmed - 60  # the flip snapshot: the worker's first
    proc = processor()
    state = proc.load(None, SEC)
    outs = feed(proc, state, [Polled(snap(start)), Polled(snap(confirmed))])
    assert alerts_of(outs) == [] and state.detector.regime.value == "NEUTRAL"
    history = series(confirmed + 5)
    outs = feed(
        proc,
        state,
        [history, *(Polled(snap(t), history.received_ms) for t in minutes(confirmed + 60, CLOSE))],
    )
    got = alerts_of(outs)
    assert got[0] == {**cont[0], "found_in_history": True}
    assert got[1:] == cont[1:]


# -- gap fill -------------------------------------------------------------------------------


def test_a_reversal_inside_a_hole_is_published_once_found_in_history() -> None:
    """Polling stops at 10:25 and resumes at 10:55: the first reversal (10:38) falls in
    the hole. The minute history published at 10:55:05 finds it, at the minute it was
    confirmed, once; the alerts after the hole are the continuous run's."""
    cont = alerts_of(continuous())
    hole = (OPEN + 3300, OPEN + 5100)  # (10:25, 10:55)
    in_hole = [a for a in cont if hole[0] < a["event_ts"] < hole[1]]
    assert len(in_hole) == 1
    proc = processor()
    state = proc.load(None, SEC)
    before = [Polled(snap(t)) for t in minutes(OPEN, hole[0] + 1)]
    resumed = [Polled(snap(t)) for t in minutes(hole[1], hole[1] + 61)]
    history = series(hole[1] + 65)
    after = [Polled(snap(t), history.received_ms) for t in minutes(hole[1] + 120, CLOSE)]
    outs = feed(proc, state, [*before, *resumed, history, *after])
    flows = flows_of(outs)
    resumed_flows = flows[len(before) : len(before) + len(resumed)]
    assert [f["baseline"] for f in resumed_flows] == ["none", "none"]
    got = alerts_of(outs)
    assert got == [a for a in cont if a["event_ts"] <= hole[0]] + [
        {**in_hole[0], "found_in_history": True}
    ] + [a for a in cont if a["event_ts"] >= hole[1]]
    # Delivered again (at least once): nothing new.
    assert proc.take(state, history) == []


def test_a_series_fetched_before_the_snapshot_that_ends_a_hole_finds_it_too() -> None:
    """The same hole, but the series comes before the first snapshot after it (fetched
    right before that poll): that snapshot has a minute baseline, and the reversal in
    the hole is still found at the minute it was confirmed, once."""
    cont = alerts_of(continuous())
    hole = (OPEN + 3300, OPEN + 5100)  # (10:25, 10:55)
    in_hole = [a for a in cont if hole[0] < a["event_ts"] < hole[1]]
    proc = processor()
    state = proc.load(None, SEC)
    before = [Polled(snap(t)) for t in minutes(OPEN, hole[0] + 1)]
    history = series(hole[1] - 5)
    after = [Polled(snap(t), history.received_ms) for t in minutes(hole[1], CLOSE)]
    outs = feed(proc, state, [*before, history, *after])
    assert flows_of(outs)[len(before)]["baseline"] == "minute"
    got = alerts_of(outs)
    assert got == [a for a in cont if a["event_ts"] <= hole[0]] + [
        {**in_hole[0], "found_in_history": True}
    ] + [a for a in cont if a["event_ts"] >= hole[1]]


def test_a_series_between_close_polls_replays_nothing() -> None:
    """Polls two minutes apart, a series before each: no hole, so nothing is replayed
    and every alert is the live one of a continuous run."""
    cont = alerts_of(continuous())
    proc = processor()
    state = proc.load(None, SEC)
    records: list[Incoming] = []
    for t in minutes(OPEN, CLOSE)[::2]:
        history = series(t - 5)
        records += [history, Polled(snap(t), history.received_ms)]
    got = alerts_of(feed(proc, state, records))
    assert got and not any(a["found_in_history"] for a in got)
    assert [(a["direction"]) for a in got] == [a["direction"] for a in cont]


# -- the order of the two topics ------------------------------------------------------------


def poller_day(rng: random.Random, start: float) -> list[Incoming]:
    """What a poller publishes from ``start``: snapshots every 30-90 s, now and then a
    capital-flow series; each snapshot names the latest series before it."""
    out: list[Incoming] = []
    ref = 0
    t = start
    while t < CLOSE:
        if rng.random() < 0.08 or (ref == 0 and rng.random() < 0.5):
            history = series(t, received_ms=int(t * 1000) + 1)
            out.append(history)
            ref = history.received_ms
            t += 1
        out.append(Polled(snap(t), ref))
        t += rng.choice([30, 60, 90])
        if LUNCH < t < AFTERNOON:
            t = AFTERNOON + 1
    return out


def interleave(records: list[Incoming], rng: random.Random) -> list[Incoming]:
    """Another delivery order: each topic keeps its own order, the two mix at random."""
    snaps = [r for r in records if isinstance(r, Polled)]
    flows = [r for r in records if isinstance(r, MinuteSeries)]
    out: list[Incoming] = []
    while snaps or flows:
        pick = snaps if (snaps and (not flows or rng.random() < 0.5)) else flows
        out.append(pick.pop(0))
    return out


def published(outcomes: list[Outcome]) -> list[tuple[bytes | None, tuple[tuple[bytes, str], ...]]]:
    return [(o.flow, tuple(o.alerts())) for o in outcomes if o.result is not Result.WAITING]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([OPEN + 1800, OPEN + 5400, AFTERNOON + 600]))
def test_any_delivery_order_gives_the_same_flows_and_alerts(seed: int, start: float) -> None:
    rng = random.Random(seed)
    records = poller_day(rng, start)
    proc = processor()
    want = published(feed(proc, proc.load(None, SEC), records))
    assert any(flow is not None for flow, _ in want)
    got = published(feed(proc, proc.load(None, SEC), interleave(records, rng)))
    assert got == want


def test_state_stored_between_records_continues_identically() -> None:
    rng = random.Random(7)
    records = interleave(poller_day(rng, OPEN + 5400), rng)
    proc = processor()
    want = published(feed(proc, proc.load(None, SEC), records))
    got: list[Outcome] = []
    blob: bytes | None = None
    for record in records:
        state = proc.load(blob, SEC)
        got.extend(proc.take(state, record))
        blob = proc.dump(state)
    assert published(got) == want


def test_a_lost_series_holds_snapshots_only_so_long() -> None:
    proc = processor()
    state = proc.load(None, SEC)
    waiting = [Polled(snap(OPEN + 60 + i), 123) for i in range(MAX_WAITING)]
    outs = feed(proc, state, waiting)
    assert {o.result for o in outs} == {Result.WAITING}
    outs = proc.take(state, Polled(snap(OPEN + 60 + MAX_WAITING), 123))
    assert [o.result for o in outs].count(Result.FLOW) == MAX_WAITING + 1
    assert state.inbox.waiting == []


def test_an_unusable_series_lets_its_snapshots_go_on() -> None:
    from streams.pipeline.processor import Unusable

    proc = processor()
    state = proc.load(None, SEC)
    assert [o.result for o in proc.take(state, Polled(snap(OPEN + 60), 5000))] == [Result.WAITING]
    outs = proc.take(state, Unusable(SEC, 5000))
    assert [o.result for o in outs] == [Result.FLOW]


def test_an_empty_inbox_is_not_stored() -> None:
    proc = processor()
    state = proc.load(None, SEC)
    proc.take(state, Polled(snap(OPEN + 60)))
    assert "inbox" not in orjson.loads(proc.dump(state))
    assert state.inbox == Inbox()


def test_minute_levels_are_trimmed_to_the_window() -> None:
    proc = processor()
    state = proc.load(None, SEC)
    history = series(OPEN + 5400)
    feed(
        proc,
        state,
        [
            history,
            *(Polled(snap(t), history.received_ms) for t in minutes(OPEN + 5460, OPEN + 6000)),
        ],
    )
    assert len(state.flow.minutes) <= 7
    assert state.flow.minutes[0].ts <= state.flow.last_ts - PARAMS.window  # type: ignore[operator]


# -- the capital-flow record ----------------------------------------------------------------


def _record(at: float, received_ms: int = 1_795_575_601_000) -> CapitalFlowSeries:
    history = series(at)
    return CapitalFlowSeries(
        security=SEC,
        market="HK",
        qot_market=1,
        code="00700",
        trading_day=DAY,
        rows=[
            CapitalFlowRow(
                time=format_local_time("HK", r.ts),
                timestamp=r.ts,
                in_flow=r.net_super + r.net_big,
                super_in_flow=r.net_super,
                big_in_flow=r.net_big,
                mid_in_flow=r.net_mid,
                sml_in_flow=r.net_small,
            )
            for r in history.rows
        ],
        last_valid_time=format_local_time("HK", at),
        last_valid_timestamp=at,
        received_at_ms=received_ms,
        source="test",
        period_type=1,
    )


def test_a_capital_flow_record_decodes_to_its_minute_levels() -> None:
    at = OPEN + 5400 + 25
    got = processor().decode_series(SEC.encode(), _record(at).SerializeToString())
    assert got == replace(series(at), received_ms=1_795_575_601_000)


def test_an_invalid_capital_flow_record_names_its_security_and_receive_time() -> None:
    msg = _record(OPEN + 5400)
    msg.rows[3].timestamp, msg.rows[4].timestamp = msg.rows[4].timestamp, msg.rows[3].timestamp
    with pytest.raises(DecodeError) as err:
        processor().decode_series(SEC.encode(), msg.SerializeToString())
    assert (err.value.security, err.value.received_ms) == (SEC, 1_795_575_601_000)
    with pytest.raises(DecodeError, match="does not match"):
        processor().decode_series(b"HK.09988", _record(OPEN + 5400).SerializeToString())
    with pytest.raises(DecodeError, match=r"not a capflow\.v1\.CapitalFlowSeries"):
        processor().decode_series(SEC.encode(), b"\xff\xff")


# -- recordings: capflow record / replay / backtest -----------------------------------------


def _records_as_messages(records: list[Incoming]) -> list[Any]:
    """The poller's records as the topics hold them (what ``capflow record`` writes)."""
    out: list[Any] = []
    for record in records:
        if isinstance(record, MinuteSeries):
            msg = _record(record.last_valid_ts or OPEN, received_ms=record.received_ms)
            out.append(msg)
        else:
            assert isinstance(record, Polled)
            s = record.snapshot
            out.append(
                DistributionSnapshot(
                    security=SEC,
                    market="HK",
                    qot_market=1,
                    code="00700",
                    trading_day=DAY,
                    capital_in_super=s.in_super,
                    capital_in_big=s.in_big,
                    capital_in_mid=s.in_mid,
                    capital_in_small=s.in_small,
                    capital_out_super=s.out_super,
                    capital_out_big=s.out_big,
                    capital_out_mid=s.out_mid,
                    capital_out_small=s.out_small,
                    update_timestamp=s.event_ts,
                    capital_flow_ref_ms=record.ref_ms,
                )
            )
    return out


def test_a_recording_with_minute_history_backtests_as_the_worker_processes_it(
    tmp_path: Path,
) -> None:
    rng = random.Random(3)
    records = interleave(poller_day(rng, OPEN + 5400), rng)
    path = tmp_path / "day.jsonl"
    path.write_bytes(b"".join(to_json_line(m) for m in _records_as_messages(records)))
    assert [type(m) for m in read_recording(path)] == [
        CapitalFlowSeries if isinstance(r, MinuteSeries) else DistributionSnapshot for r in records
    ]
    # The worker: each record decoded from the file, through the processing step.
    proc = processor()
    state = proc.load(None, SEC)
    worker: list[bytes] = []
    for msg in read_recording(path):
        value = msg.SerializeToString()
        incoming = (
            proc.decode_series(SEC.encode(), value)
            if isinstance(msg, CapitalFlowSeries)
            else proc.decode_polled(SEC.encode(), value)
        )
        worker += [payload for o in proc.take(state, incoming) for payload, _ in o.alerts()]
    assert worker  # the day has reversals
    recording = load_recording(path)
    assert len(recording.series) == sum(isinstance(r, MinuteSeries) for r in records)
    (result,) = run(recording, parameter_grid({}, PARAMS))
    assert list(result.payloads()) == worker
