"""Replaying a recorded day yields the same flows and alerts as the live run.

Live: simulator -> worker (poller + processors) -> flows and alerts. Then
``capflow record`` writes the live snapshot topic (and the minute history the poller
fetched, capital flow) to a file, ``capflow replay`` publishes it into a fresh topic
set, and a fresh worker (``--no-poller``, new app id) processes it. Everything runs on
event time, and minute history is folded in where the snapshots name it, so the
outputs must be identical.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka.topics import ensure_topics
from streams.offline.recording import read_recording, to_json_line
from streams.pb.capflow.v1.capital_flow_pb2 import CapitalFlowSeries
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pipeline.processor import Incoming, SecurityProcessor, SecurityState
from streams.processing.thresholds import ThresholdConfig
from tests.integration.harness import (
    Topics,
    rate_limit,
    read_to_end,
    read_topic,
    run_cli,
    start_scenario_sim,
    start_worker,
    wait_for,
    workers_stopped,
)

pytestmark = pytest.mark.integration

# Simulated seconds per wall second, and the budget that keeps each security polled every
# 30 simulated seconds at that speed (20 requests a second over 3 securities).
SPEED = 200.0
REQUESTS = 200
RUN_S = 2400.0  # simulated seconds of the scenario to run live: flips at 900, 1200, 2100
WATCHLIST = ["HK.00700", "HK.09988", "HK.01810"]


def flows_by_security(records: list[Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        flow = orjson.loads(rec.value)
        assert rec.key == flow["security"].encode()
        out[flow["security"]].append(flow)
    return dict(out)


def alert_keys(alerts: list[dict[str, Any]]) -> list[tuple[str, str, str, float]]:
    return sorted(
        (a["subject"], a["id"], a["data"]["direction"], a["data"]["event_ts"]) for a in alerts
    )


def offline(
    snapshots: list[DistributionSnapshot],
    series: Sequence[CapitalFlowSeries] = (),
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Flow counts per security and alerts of the records, without Kafka (default params):
    the series first (the processing step puts them where the snapshots name them)."""
    proc = SecurityProcessor(ThresholdConfig())
    states: dict[str, SecurityState] = {}
    counts: dict[str, int] = defaultdict(int)
    alerts = []
    for msg in [*series, *snapshots]:
        value = msg.SerializeToString()
        incoming: Incoming = (
            proc.decode_series(msg.security.encode(), value)
            if isinstance(msg, CapitalFlowSeries)
            else proc.decode_polled(msg.security.encode(), value)
        )
        state = states.setdefault(msg.security, proc.load(None, msg.security))
        for out in proc.take(state, incoming):
            if out.flow is not None:
                counts[msg.security] += 1
            alerts += [orjson.loads(payload) for payload, _ in out.alerts()]
    return dict(counts), alerts


def snapshots_of(records: list[Any]) -> list[DistributionSnapshot]:
    return [DistributionSnapshot.FromString(r.value) for r in records]


async def test_replay_of_a_recorded_day_matches_the_live_run(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    sim, scenario = await start_scenario_sim(requests=REQUESTS)
    clock = sim.clock  # frozen until the worker polls
    live, again = Topics(f"{topic_prefix}live"), Topics(f"{topic_prefix}replay")
    # Both topic sets up front, with the worker's partitions: a reader subscribing to a
    # topic no one has created yet would have the broker create it with one partition.
    await ensure_topics(
        {"bootstrap_servers": kafka_bootstrap}, [*live.names.values(), *again.names.values()], 3
    )

    async def series_of(topic: str) -> list[CapitalFlowSeries]:
        return [
            CapitalFlowSeries.FromString(r.value) for r in await read_to_end(kafka_bootstrap, topic)
        ]

    # -- the live run ---------------------------------------------------------------
    worker = start_worker(
        kafka_bootstrap, live, f"capflow-{uuid.uuid4().hex[:8]}", tmp_path,
        opend_port=sim.port, watchlist=WATCHLIST, name="live", extra=rate_limit(REQUESTS),
    )  # fmt: skip
    try:
        with workers_stopped(worker):
            try:
                await wait_for(lambda: sim.counts[3212] > 0, 120, "the worker's first request")
            except AssertionError:
                raise AssertionError(worker.tail()) from None
            clock.set(scenario.start, speed=SPEED)
            await wait_for(
                lambda: clock.now() >= scenario.start + RUN_S, RUN_S / SPEED + 30, "the run"
            )
            # Freeze the market: every later poll is a duplicate, which changes nothing.
            clock.set(clock.now(), speed=0.0)
            frozen_at = float(int(clock.now()))

            # Wait until the worker has turned every snapshot into its flow.
            live_snaps: list[DistributionSnapshot] = []
            expected: dict[str, int] = {}
            live_flow_records: list[Any] = []
            progress: dict[str, Any] = {}

            async def caught_up() -> bool:
                nonlocal live_snaps, expected, live_flow_records
                records = await read_to_end(kafka_bootstrap, live.names["distribution"])
                live_snaps = snapshots_of(records)
                last = {s.security: s.update_timestamp for s in live_snaps}
                expected, _ = offline(live_snaps, await series_of(live.names["capitalflow"]))
                live_flow_records = await read_to_end(kafka_bootstrap, live.names["flow"])
                got = {s: len(f) for s, f in flows_by_security(live_flow_records).items()}
                progress.update(got=got, expected=expected, last=last)
                return all(last.get(s) == frozen_at for s in WATCHLIST) and got == expected

            await wait_for(caught_up, 60, lambda: f"every flow: {progress}\n{worker.tail()}", 0.5)
            assert worker.proc.poll() is None, "the live worker died:\n" + worker.tail()
    finally:
        await sim.stop()

    live_alerts = [
        orjson.loads(r.value) for r in await read_to_end(kafka_bootstrap, live.names["alerts"])
    ]
    live_flows = flows_by_security(live_flow_records)
    # A meaningful comparison needs reversals: HK.00700 at 900 s and HK.09988 at 1200 s.
    assert {a["subject"] for a in live_alerts} >= {"HK.00700", "HK.09988"}, live_alerts
    assert all(len(live_flows[s]) >= 20 for s in WATCHLIST), {
        s: len(f) for s, f in live_flows.items()
    }
    # The poller kept publishing until the worker stopped: those last snapshots are
    # duplicates of the frozen market, which change nothing.
    before = len(live_snaps)
    live_snaps = snapshots_of(await read_to_end(kafka_bootstrap, live.names["distribution"]))
    assert len(live_snaps) >= before
    # The live worker computed exactly what the processor computes from its input.
    live_series = await series_of(live.names["capitalflow"])
    assert live_series, "the live worker fetched no minute history"
    counts, offline_alerts = offline(live_snaps, live_series)
    assert counts == expected
    assert alert_keys(offline_alerts) == alert_keys(live_alerts)

    # -- record -----------------------------------------------------------------------
    recording = tmp_path / "day.jsonl"
    code, out, err = await run_cli(
        "record", str(recording),
        "--kafka-bootstrap", kafka_bootstrap, "--topic-distribution", live.names["distribution"],
        "--topic-capitalflow", live.names["capitalflow"],
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == (
        f"recorded {len(live_snaps)} snapshots and {len(live_series)} capital-flow series "
        f"to {recording}"
    )
    lines = list(read_recording(recording))
    recorded = [m for m in lines if isinstance(m, DistributionSnapshot)]
    assert len(recorded) == len(live_snaps)
    assert [m for m in lines if isinstance(m, CapitalFlowSeries)] == live_series
    # Per security, the recording keeps the topic's order (and every field).
    for sec in WATCHLIST:
        assert [m for m in recorded if m.security == sec] == [
            m for m in live_snaps if m.security == sec
        ]

    # -- replay into a fresh topic set, processed by a fresh worker ----------------------
    code, out, err = await run_cli(
        "replay", str(recording),
        "--kafka-bootstrap", kafka_bootstrap, "--topic-distribution", again.names["distribution"],
        "--topic-capitalflow", again.names["capitalflow"],
    )  # fmt: skip
    assert code == 0, err
    n, total = len(recorded), len(lines)
    assert re.fullmatch(
        rf"replayed {n} snapshots from {re.escape(str(recording))} to "
        rf"{re.escape(again.names['distribution'])} and {len(live_series)} capital-flow series "
        rf"to {re.escape(again.names['capitalflow'])}: {total} confirmed written in \d+\.\ds",
        out.strip(),
    ), out
    assert f"sent {total}/{total} (100%)" in err, err
    replayed = snapshots_of(await read_to_end(kafka_bootstrap, again.names["distribution"]))
    assert len(replayed) == n
    for sec in WATCHLIST:
        assert [m for m in replayed if m.security == sec] == [
            m for m in recorded if m.security == sec
        ]

    replayer = start_worker(
        kafka_bootstrap, again, f"capflow-replay-{uuid.uuid4().hex[:8]}", tmp_path,
        opend_port=sim.port, watchlist=WATCHLIST, name="replay",
        extra=["--no-poller", "--no-leader-grace"],
    )  # fmt: skip
    with workers_stopped(replayer):
        total = sum(len(f) for f in live_flows.values())
        flow_records = await read_topic(
            kafka_bootstrap, again.names["flow"], until=lambda r: len(r) >= total, timeout=90
        )
        assert len(flow_records) >= total, (len(flow_records), total, replayer.tail())
        # Alerts are awaited before the state moves on; extras, if any, would be right
        # behind the expected ones: a second's settle catches them.
        alert_records = await read_topic(
            kafka_bootstrap, again.names["alerts"],
            until=lambda r: len(r) >= len(live_alerts), timeout=15, settle=1.0,
        )  # fmt: skip
        flow_records = await read_to_end(kafka_bootstrap, again.names["flow"])
        assert replayer.proc.poll() is None, "the replay worker died:\n" + replayer.tail()

    replay_alerts = [orjson.loads(r.value) for r in alert_records]
    assert alert_keys(replay_alerts) == alert_keys(live_alerts)
    by_id = {a["id"]: a for a in live_alerts}
    for alert in replay_alerts:
        assert alert == by_id[alert["id"]]
    assert flows_by_security(flow_records) == live_flows
    log = replayer.log.read_text(errors="replace")
    assert "polling gateway" not in log  # --no-poller: only the processors ran


# -- errors of the replay command ----------------------------------------------------------


async def topic_exists(bootstrap: str, topic: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return topic in set(await admin.list_topics())
    finally:
        await admin.close()


def good_line(i: int) -> bytes:
    msg = DistributionSnapshot(
        security="HK.00700", market="HK", qot_market=1, code="00700",
        capital_in_big=1000.0 * i, update_timestamp=1_717_378_200.0 + 60 * i,
        update_time="2024-06-03 09:30:00", trading_day="2024-06-03",
    )  # fmt: skip
    return to_json_line(msg)


async def test_replay_missing_file_fails_clearly(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.jsonl"
    code, out, err = await run_cli(
        "replay", str(missing),
        "--kafka-bootstrap", kafka_bootstrap, "--topic-distribution", f"{topic_prefix}.d",
    )  # fmt: skip
    assert code == 1
    assert err.strip() == f"capflow replay: {missing} does not exist"
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize(
    ("bad", "detail"),
    [
        (b'{"security": "HK.00700", "capital_in_bgi": 1.0}\n', "capital_in_bgi"),
        (b"HK.00700,2024-06-03,1000\n", "Failed to load JSON"),
        (b'{"security": "HK.\xff00700"}\n', "utf-8"),
    ],
)
async def test_replay_malformed_line_fails_clearly_and_publishes_nothing(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, bad: bytes, detail: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(good_line(0) + good_line(1) + bad + good_line(2))
    topic = f"{topic_prefix}.distribution"
    code, out, err = await run_cli(
        "replay", str(path), "--kafka-bootstrap", kafka_bootstrap, "--topic-distribution", topic
    )
    assert code == 1, (out, err)
    assert err.startswith(f"capflow replay: {path}:3: not a DistributionSnapshot"), err
    assert detail in err
    assert "Traceback" not in err
    # The file is checked before anything is published: no half-replayed day.
    assert not await topic_exists(kafka_bootstrap, topic)


async def test_replay_empty_file_and_bad_speed(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"\n\n")
    args = ["--kafka-bootstrap", kafka_bootstrap, "--topic-distribution", f"{topic_prefix}.d"]
    code, _, err = await run_cli("replay", str(path), *args)
    assert code == 1 and "holds no snapshots" in err
    path.write_bytes(good_line(0))
    code, _, err = await run_cli("replay", str(path), "--realtime", "--speed", "0", *args)
    assert code == 2 and "--speed must be > 0" in err


async def test_record_of_missing_topic_fails(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    out_file = tmp_path / "never.jsonl"
    code, _, err = await run_cli(
        "record", str(out_file),
        "--kafka-bootstrap", kafka_bootstrap, "--topic-distribution", f"{topic_prefix}.none",
    )  # fmt: skip
    assert code == 1
    assert f"topic {topic_prefix}.none does not exist" in err
    assert not out_file.exists()
