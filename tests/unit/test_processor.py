"""SecurityProcessor: decoding snapshot records, and the per-security step without Faust."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pipeline.processor import DecodeError, Outcome, SecurityProcessor
from streams.processing.detector import INFLOW_TO_OUTFLOW, DetectorState, make_alert_id
from streams.processing.events import parse_alert, parse_flow
from streams.processing.flow import FlowState, Snapshot
from streams.processing.thresholds import DetectorParams, ThresholdConfig

SEC = "HK.00700"
DAY = "2024-06-03"
T0 = 1_717_378_200.0  # 09:30 HKT
STEP = 60.0


def record(
    t: float, in_big: float = 0.0, out_big: float = 0.0, **fields: Any
) -> DistributionSnapshot:
    base: dict[str, Any] = {
        "security": SEC,
        "market": "HK",
        "qot_market": 1,
        "code": "00700",
        "capital_in_big": in_big,
        "capital_out_big": out_big,
        "update_timestamp": t,
        "trading_day": DAY,
        "source": "test",
    }
    base.update(fields)
    return DistributionSnapshot(**base)


def encode(msg: DistributionSnapshot) -> bytes:
    return msg.SerializeToString()


def reversal_script() -> list[DistributionSnapshot]:
    """Large orders flow in for 9 minutes, then out: one INFLOW -> OUTFLOW reversal.

    Snapshot i at T0 + 60 i. in_big climbs 1000 a minute up to 9000 (i = 9), then
    out_big climbs 3000 a minute from i = 10. With W = 300 s: R_W(10) = 6000 - 5000 > 0,
    R_W(11) = 3000 - 6000 = -3000 (the flip), R_W(12) = 0 - 7000 (confirmed, confirm = 2).
    """
    out = []
    for i in range(15):
        in_big = 1000.0 * min(i, 9)
        out_big = 3000.0 * max(0, i - 9)
        out.append(record(T0 + STEP * i, in_big=in_big, out_big=out_big))
    return out


@pytest.fixture
def proc() -> SecurityProcessor:
    return SecurityProcessor(ThresholdConfig(DetectorParams()))


def run(
    proc: SecurityProcessor, msgs: list[DistributionSnapshot], blob: bytes | None = None
) -> tuple[list[Outcome], bytes | None]:
    outcomes = []
    for msg in msgs:
        out = proc.process(blob, proc.decode(msg.security.encode(), encode(msg)))
        outcomes.append(out)
        blob = out.state
    return outcomes, blob


# -- decode ------------------------------------------------------------------------


def test_decode_good_record(proc: SecurityProcessor) -> None:
    msg = record(T0, in_big=5.5, out_big=1.25, capital_in_super=7.0, capital_out_small=3.0)
    snap = proc.decode(SEC.encode(), encode(msg))
    assert snap == Snapshot(
        security=SEC, market="HK", trading_day=DAY, event_ts=T0,
        in_super=7.0, in_big=5.5, in_mid=0.0, in_small=0.0,
        out_super=None, out_big=1.25, out_mid=0.0, out_small=3.0,  # unset: absent, not 0
    )  # fmt: skip
    # A record without a key is accepted (the key is only cross-checked when present).
    assert proc.decode(None, encode(msg)) == snap


@pytest.mark.parametrize("value", [b"", None])
def test_decode_rejects_empty_value(proc: SecurityProcessor, value: bytes | None) -> None:
    with pytest.raises(DecodeError, match="empty record value"):
        proc.decode(SEC.encode(), value)


def test_decode_rejects_garbage(proc: SecurityProcessor) -> None:
    with pytest.raises(DecodeError, match=r"not a capflow\.v1\.DistributionSnapshot"):
        proc.decode(SEC.encode(), b"\xff not protobuf")


def test_decode_rejects_key_security_mismatch(proc: SecurityProcessor) -> None:
    with pytest.raises(DecodeError) as err:
        proc.decode(b"HK.09988", encode(record(T0)))
    assert "HK.09988" in str(err.value) and SEC in str(err.value)
    assert "does not match" in str(err.value)


def test_decode_rejects_missing_trading_day(proc: SecurityProcessor) -> None:
    with pytest.raises(DecodeError, match="without security or trading_day"):
        proc.decode(SEC.encode(), encode(record(T0, trading_day="")))


def test_decode_rejects_missing_security(proc: SecurityProcessor) -> None:
    with pytest.raises(DecodeError, match="without security or trading_day"):
        proc.decode(None, encode(record(T0, security="")))


def test_decode_rejects_missing_timestamp(proc: SecurityProcessor) -> None:
    with pytest.raises(DecodeError, match=f"snapshot of {SEC} without updateTimestamp"):
        proc.decode(SEC.encode(), encode(record(0.0)))


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"trading_day": "20240603"}, "trading_day must be yyyy-MM-dd"),
        ({"capital_in_mid": math.nan}, "in_mid must be finite"),
        ({"capital_out_super": math.inf}, "out_super must be finite"),
        ({"update_timestamp": math.nan}, "event_ts must be finite"),
    ],
)
def test_decode_rejects_unusable_values_as_decode_errors(
    proc: SecurityProcessor, fields: dict[str, Any], detail: str
) -> None:
    # These would poison the rolling state; they must be DecodeError (dead-lettered by
    # the worker), not a bare ValueError that would crash the agent.
    msg = record(T0)
    for name, value in fields.items():
        setattr(msg, name, value)
    with pytest.raises(DecodeError, match=detail):
        proc.decode(SEC.encode(), encode(msg))


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"update_timestamp": 4_102_444_800.0, "trading_day": "2100-01-01"}, "ahead of the clock"),
        ({"trading_day": "2100-01-01"}, "does not match updateTimestamp"),
        ({"trading_day": "9999-99-99"}, "not a real date"),
        ({"update_timestamp": T0 * 1000}, "ahead of the clock"),
        ({"update_timestamp": 1e20}, "ahead of the clock"),
        ({"update_timestamp": 86_400.0, "trading_day": "1970-01-02"}, "not after 2000"),
        ({"capital_out_big": -1.0}, "capital_out_big must be >= 0"),
        ({"capital_in_super": -5e6}, "capital_in_super must be >= 0"),
        ({"market": "US"}, "does not match"),
    ],
)
def test_decode_rejects_invalid_snapshots(
    proc: SecurityProcessor, fields: dict[str, Any], detail: str
) -> None:
    msg = record(T0, in_big=10.0)
    for name, value in fields.items():
        setattr(msg, name, value)
    with pytest.raises(DecodeError, match=detail) as err:
        proc.decode(SEC.encode(), encode(msg))
    assert SEC in str(err.value)


def test_decode_checks_the_future_against_the_injected_clock() -> None:
    msg = encode(record(T0, in_big=10.0))
    early = SecurityProcessor(ThresholdConfig(DetectorParams()), clock=lambda: T0 - 2 * 86_400)
    with pytest.raises(DecodeError, match="ahead of the clock"):
        early.decode(SEC.encode(), msg)
    on_time = SecurityProcessor(ThresholdConfig(DetectorParams()), clock=lambda: T0 - 86_400)
    assert on_time.decode(SEC.encode(), msg).event_ts == T0


def test_a_far_future_record_cannot_poison_the_security(proc: SecurityProcessor) -> None:
    msgs = reversal_script()
    _, blob = run(proc, msgs[:3])
    bad = record(4_102_444_800.0, in_big=1.0, trading_day="2100-01-01")
    with pytest.raises(DecodeError):
        proc.decode(SEC.encode(), encode(bad))  # dead-lettered by the agent
    rest, _ = run(proc, msgs[3:], blob)
    assert [o.result for o in rest] == ["flow"] * len(msgs[3:])
    straight, _ = run(proc, msgs)
    assert [o.flow for o in rest] == [o.flow for o in straight[3:]]


def test_a_negative_amount_is_dead_lettered_and_gives_no_false_reversal(
    proc: SecurityProcessor,
) -> None:
    """Issue: a negative in_big was taken as a correction, and the return to the normal
    value counted as fresh inflow, a false outflow_to_inflow alert."""
    msgs = [record(T0 + STEP * i, in_big=1000.0 * i, out_big=3000.0 * i) for i in range(12)]
    bad = record(T0 + STEP * 12, in_big=-50_000_000.0, out_big=36_000.0)
    tail = [record(T0 + STEP * i, in_big=1000.0 * i, out_big=3000.0 * i) for i in range(13, 20)]
    with pytest.raises(DecodeError, match="capital_in_big must be >= 0"):
        proc.decode(SEC.encode(), encode(bad))
    outcomes, _ = run(proc, msgs + tail)
    assert all(o.alert is None for o in outcomes)
    assert all(parse_flow(o.flow or b"")["change"]["large"] <= 0 for o in outcomes)


def test_snapshots_without_super_amounts_flow_like_zero_at_the_open(
    proc: SecurityProcessor,
) -> None:
    msgs = reversal_script()
    assert not msgs[0].HasField("capital_in_super")
    with_zero = []
    for m in msgs:
        z = DistributionSnapshot()
        z.CopyFrom(m)
        z.capital_in_super = z.capital_out_super = 0.0
        with_zero.append(z)
    absent, _ = run(proc, msgs)
    zero, _ = run(proc, with_zero)
    assert [o.flow for o in absent] == [o.flow for o in zero]


# -- process -----------------------------------------------------------------------


def test_sequence_yields_one_flow_per_snapshot(proc: SecurityProcessor) -> None:
    msgs = reversal_script()[:6]
    outcomes, blob = run(proc, msgs)
    assert [o.result for o in outcomes] == ["flow"] * 6
    flows = [parse_flow(o.flow or b"") for o in outcomes]
    assert [f["event_ts"] for f in flows] == [m.update_timestamp for m in msgs]
    assert all(f["security"] == SEC and f["trading_day"] == DAY for f in flows)
    assert all(f["window_s"] == 300.0 for f in flows)
    # The day started inside the window: R_W is the large net since the open.
    assert [f["change"]["large"] for f in flows] == [0.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0]
    assert [f["large_net"] for f in flows] == [0.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0]
    # From i = 1 on, R_W > theta = 0.1 * dT, so the regime is INFLOW.
    assert [f["regime"] for f in flows] == ["NEUTRAL"] + ["INFLOW"] * 5
    assert flows[3]["threshold"] == pytest.approx(0.1 * 3000.0)
    assert all(o.alert is None for o in outcomes)
    assert blob is not None


def test_duplicate_yields_no_flow_and_is_counted(proc: SecurityProcessor) -> None:
    msgs = reversal_script()[:3]
    _, blob = run(proc, msgs)
    dup = proc.process(blob, proc.decode(SEC.encode(), encode(msgs[-1])))
    assert dup.result == "duplicate"
    assert dup.flow is None and dup.alert is None and dup.direction is None
    assert dup.state is not None
    assert orjson.loads(dup.state)["flow"]["duplicates"] == 1
    # An older snapshot changes nothing downstream either.
    stale = proc.process(dup.state, proc.decode(SEC.encode(), encode(msgs[0])))
    assert stale.result == "stale" and stale.flow is None  # late: counted apart
    assert orjson.loads(stale.state or b"")["flow"]["stale"] == 1
    # The next genuine snapshot continues as if neither had arrived.
    nxt = reversal_script()[3]
    after = proc.process(stale.state, proc.decode(SEC.encode(), encode(nxt)))
    straight, _ = run(proc, reversal_script()[:4])
    assert after.flow == straight[-1].flow


def test_state_round_trips_through_bytes(proc: SecurityProcessor) -> None:
    msgs = reversal_script()
    _, blob = run(proc, msgs[:8])
    assert blob is not None
    data = SecurityProcessor.describe(blob)
    assert set(data) == {"flow", "detector"}
    flow = FlowState.from_dict(data["flow"])
    detector = DetectorState.from_dict(data["detector"])
    assert flow.to_dict() == data["flow"] and detector.to_dict() == data["detector"]
    assert data["flow"]["last_ts"] == msgs[7].update_timestamp
    assert data["detector"]["regime"] == "INFLOW"
    # Re-encoding the state (as a changelog restore would) changes nothing downstream.
    reencoded = orjson.dumps(orjson.loads(blob))
    rest_a, _ = run(proc, msgs[8:], blob)
    rest_b, _ = run(proc, msgs[8:], reencoded)
    assert [(o.flow, o.alert) for o in rest_a] == [(o.flow, o.alert) for o in rest_b]
    # And a processor restarted mid-sequence matches one that ran straight through.
    straight, _ = run(proc, msgs)
    assert [(o.flow, o.alert) for o in straight[8:]] == [(o.flow, o.alert) for o in rest_a]


def test_scripted_reversal_raises_exactly_one_alert(proc: SecurityProcessor) -> None:
    msgs = reversal_script()
    outcomes, blob = run(proc, msgs)
    alerts = [(i, o) for i, o in enumerate(outcomes) if o.alert is not None]
    assert [i for i, _ in alerts] == [12], [parse_flow(o.flow or b"")["regime"] for o in outcomes]
    _, out = alerts[0]
    assert out.direction == INFLOW_TO_OUTFLOW
    event = parse_alert(out.alert or b"")
    flip_ts = T0 + STEP * 11
    assert event["id"] == make_alert_id(SEC, DAY, INFLOW_TO_OUTFLOW, flip_ts)
    assert event["subject"] == SEC
    data = event["data"]
    assert data["direction"] == INFLOW_TO_OUTFLOW
    assert data["event_ts"] == T0 + STEP * 12
    assert data["regime_started_ts"] == flip_ts
    assert data["previous_regime"] == "INFLOW"
    assert data["previous_regime_started_ts"] == T0 + STEP
    assert data["previous_peak"] == 5000.0  # R_W peaked at 5000 for i = 5..9
    assert data["r_w"] == -7000.0
    assert data["threshold"] == pytest.approx(0.1 * 11000.0)
    # The alert's point is published as a flow too, already in the new regime.
    assert parse_flow(out.flow or b"")["regime"] == "OUTFLOW"
    assert orjson.loads(blob or b"")["detector"]["alerts"] == 1


def test_processing_is_deterministic(proc: SecurityProcessor) -> None:
    first, _ = run(proc, reversal_script())
    again, _ = run(SecurityProcessor(ThresholdConfig(DetectorParams())), reversal_script())
    assert first == again


def test_per_security_thresholds_apply(proc: SecurityProcessor) -> None:
    # theta_abs above any |R_W| of the script: never leaves NEUTRAL, so no alert.
    strict = SecurityProcessor(ThresholdConfig(securities={SEC: {"theta_abs": 1e9}}))
    outcomes, _ = run(strict, reversal_script())
    assert all(o.alert is None for o in outcomes)
    assert {parse_flow(o.flow or b"")["regime"] for o in outcomes} == {"NEUTRAL"}
    # A longer window shows up in the flow records.
    wide = SecurityProcessor(ThresholdConfig(DetectorParams(window=900.0)))
    outcomes, _ = run(wide, reversal_script()[:2])
    assert parse_flow(outcomes[0].flow or b"")["window_s"] == 900.0


INVALID_FIELDS = st.sampled_from(
    [
        {"update_timestamp": 4_102_444_800.0, "trading_day": "2100-01-01"},
        {"update_timestamp": 253_402_300_799.0, "trading_day": "9999-12-31"},
        {"trading_day": "9999-99-99"},
        {"trading_day": "2024-06-04"},
        {"update_timestamp": T0 * 1000},
        {"update_timestamp": math.inf},
        {"update_timestamp": -T0},
        {"capital_in_big": -1.0},
        {"capital_out_big": -1e12},
        {"capital_in_super": math.nan},
        {"capital_out_small": math.inf},
        {"market": "US"},
        {"security": "HK.09988"},
    ]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 14), INVALID_FIELDS), max_size=4))
def test_no_invalid_record_changes_what_valid_ones_produce(
    inserts: list[tuple[int, dict[str, Any]]],
) -> None:
    """Whatever invalid records arrive in between, each is a DecodeError (a dead letter)
    and the valid ones produce exactly the flows and alerts they produce alone."""
    proc = SecurityProcessor(ThresholdConfig(DetectorParams()))
    good = reversal_script()
    straight, _ = run(proc, good)
    stream = list(good)
    for position, fields in sorted(inserts, key=lambda x: x[0], reverse=True):
        bad = DistributionSnapshot()
        bad.CopyFrom(good[position])
        for name, value in fields.items():
            setattr(bad, name, value)
        stream.insert(position, bad)
    blob: bytes | None = None
    outcomes = []
    for msg in stream:
        try:
            snap = proc.decode(SEC.encode(), encode(msg))
        except DecodeError:
            assert msg not in good
            continue
        out = proc.process(blob, snap)
        outcomes.append(out)
        blob = out.state
    assert [(o.flow, o.alert) for o in outcomes] == [(o.flow, o.alert) for o in straight]
