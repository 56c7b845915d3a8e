"""Folding batches of records gives exactly what record-by-record processing gives."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pipeline.batch import Batch
from streams.pipeline.processor import Incoming, Polled, SecurityProcessor, SecurityState
from streams.processing.flow import Snapshot
from streams.processing.thresholds import DetectorParams, ThresholdConfig

T0 = 1_717_378_200.0
SECURITIES = ("HK.00700", "HK.09988", "US.AAPL")
PARAMS = DetectorParams(window=120, theta_rel=0.05, confirm=2, cooldown=60)


def snap(security: str, t: float, in_big: float, out_big: float, small: float) -> Snapshot:
    return Snapshot(
        security=security,
        market=security.split(".")[0],
        trading_day="2024-06-03",
        event_ts=t,
        in_super=0.0,
        in_big=in_big,
        in_mid=0.0,
        in_small=small,
        out_super=0.0,
        out_big=out_big,
        out_mid=0.0,
        out_small=small,
    )


@st.composite
def days(draw: Any) -> list[Snapshot]:
    """Snapshots of a few securities, interleaved; mostly growing, with repeats, late
    ones and drops (corrections) mixed in."""
    state = {s: [T0, 1e6, 1e6, 1e6] for s in SECURITIES}
    out: list[Snapshot] = []
    for _ in range(draw(st.integers(1, 60))):
        sec = draw(st.sampled_from(SECURITIES))
        t, in_big, out_big, small = state[sec]
        kind = draw(st.sampled_from(["step", "step", "step", "repeat", "late", "drop"]))
        if kind == "step":
            t += draw(st.sampled_from([15.0, 30.0, 60.0]))
            in_big += draw(st.floats(0, 5e5))
            out_big += draw(st.floats(0, 5e5))
            small += draw(st.floats(0, 1e5))
        elif kind == "late":
            t -= 45.0
        elif kind == "drop":
            t += 30.0
            in_big *= 0.5
        out.append(snap(sec, t, in_big, out_big, small))
        if kind != "late":
            state[sec] = [t, in_big, out_big, small]
    return out


def one_by_one(snaps: list[Snapshot]) -> tuple[list[tuple[Any, ...]], dict[bytes, bytes]]:
    proc = SecurityProcessor(ThresholdConfig(PARAMS))
    stored: dict[bytes, bytes] = {}
    outputs = []
    for s in snaps:
        key = s.security.encode()
        outcome = proc.process(stored.get(key), s)
        assert outcome.state is not None
        stored[key] = outcome.state
        outputs.append((outcome.result, outcome.flow, outcome.alert))
    return outputs, stored


def in_batches(
    snaps: list[Snapshot], cuts: list[int], fail_at: int | None = None
) -> tuple[list[tuple[Any, ...]], dict[bytes, bytes]]:
    proc = SecurityProcessor(ThresholdConfig(PARAMS))
    stored: dict[bytes, bytes] = {}
    outputs = []
    bounds = sorted({0, len(snaps), *(c for c in cuts if 0 < c < len(snaps))})
    for lo, hi in itertools.pairwise(bounds):
        batch = Batch(proc, stored.get)
        for i in range(lo, hi):
            s = snaps[i]
            if i == fail_at:
                with pytest.raises(RuntimeError):
                    failing_fold(batch, s)
                continue
            (outcome,) = batch.fold(s.security.encode(), Polled(s), token=i)
            assert outcome.state is None
            outputs.append((outcome.result, outcome.flow, outcome.alert))
        for key, token, blob in batch.states():
            assert snaps[token].security.encode() == key  # the key's latest record
            stored[key] = blob
    return outputs, stored


def failing_fold(batch: Batch, s: Snapshot) -> None:
    """Fold ``s`` with a step that changes the flow state and then fails."""
    processor = batch.processor
    original = processor.take

    def broken(state: SecurityState, incoming: Incoming) -> Any:
        if not isinstance(incoming, Polled) or incoming.snapshot is not s:
            return original(state, incoming)  # the batch's earlier records, folded in again
        state.flow.update(incoming.snapshot)  # half way: the flow state has moved on
        raise RuntimeError("boom")

    processor.take = broken  # type: ignore[method-assign]
    try:
        batch.fold(s.security.encode(), Polled(s), token=-1)
    finally:
        processor.take = original  # type: ignore[method-assign]


@settings(max_examples=100, deadline=None)
@given(days(), st.lists(st.integers(0, 60), max_size=6))
def test_batches_equal_record_by_record(snaps: list[Snapshot], cuts: list[int]) -> None:
    assert in_batches(snaps, cuts) == one_by_one(snaps)


@settings(max_examples=100, deadline=None)
@given(days(), st.lists(st.integers(0, 60), max_size=4), st.integers(0, 59))
def test_a_failed_record_leaves_the_state_as_if_it_never_came(
    snaps: list[Snapshot], cuts: list[int], fail_at: int
) -> None:
    fail_at %= len(snaps)
    without = snaps[:fail_at] + snaps[fail_at + 1 :]
    got_outputs, got_state = in_batches(snaps, cuts, fail_at=fail_at)
    want_outputs, want_state = one_by_one(without)
    assert got_outputs == want_outputs
    assert got_state == want_state
