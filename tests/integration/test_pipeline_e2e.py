"""End to end: simulator scenario -> worker (poller, Faust tables) -> exact alerts on Kafka."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.kafka.topics import ensure_topics
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pipeline.deadletter import HEADER_ERROR, HEADER_STAGE
from tests.integration.harness import (
    Topics,
    alerts_of,
    expected_reversals,
    rate_limit,
    read_topic,
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
WINDOW = 300.0
WATCHLIST = ["HK.00700", "HK.09988", "HK.01810"]


async def test_scripted_reversals_are_alerted_exactly(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    sim, scenario = await start_scenario_sim(requests=REQUESTS)
    clock = sim.clock  # frozen until the worker polls
    topics = Topics(topic_prefix)
    names = topics.names
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, list(names.values()), 3)

    # A record nobody can decode: it must reach the dead-letter topic, not stop the worker.
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    await producer.send_and_wait(names["distribution"], b"\xff not protobuf", key=b"HK.00700")
    await producer.stop()

    worker = start_worker(
        kafka_bootstrap, topics, f"capflow-{uuid.uuid4().hex[:8]}", tmp_path,
        opend_port=sim.port, watchlist=WATCHLIST, extra=rate_limit(REQUESTS),
    )  # fmt: skip
    with workers_stopped(worker):
        try:
            await wait_for(lambda: sim.counts[3212] > 0, 120, "the worker's first request")
        except AssertionError:
            raise AssertionError(worker.tail()) from None
        clock.set(scenario.start, speed=SPEED)
        started = time.monotonic()
        expected = expected_reversals(scenario)
        scenario_wall = 3000 / SPEED

        records = await read_topic(
            kafka_bootstrap,
            names["alerts"],
            until=lambda recs: time.monotonic() - started > scenario_wall,
            timeout=scenario_wall + 90,
            settle=5.0,
        )
        dead = await read_topic(
            kafka_bootstrap, names["deadletter"], until=lambda r: len(r) >= 1, timeout=30
        )
        flows = await read_topic(
            kafka_bootstrap, names["flow"], until=lambda r: len(r) >= 50, timeout=30
        )
        snapshots = await read_topic(
            kafka_bootstrap, names["distribution"], until=lambda r: len(r) >= 10, timeout=30
        )
        assert worker.proc.poll() is None, "the worker died:\n" + worker.tail()

    alerts = alerts_of(records)
    got = sorted(
        (a["subject"], a["data"]["direction"], a["data"]["event_ts"], a["id"]) for a in alerts
    )
    want = [(r.security, r.direction, r.epoch) for r in expected]
    assert [(s, d) for s, d, _, _ in got] == [(s, d) for s, d, _ in want], (
        f"alerts {got}\nexpected {want}\n{worker.tail()}"
    )
    for (_, _, event_ts, _), (_, _, flip) in zip(got, want, strict=True):
        # Alerted after the scripted flip, and within one window plus polling slack.
        assert flip < event_ts <= flip + WINDOW + 120, (event_ts - flip, got)
    assert len({a["id"] for a in alerts}) == len(alerts)
    assert all(a["specversion"] == "1.0" and a["source"] for a in alerts)
    # Each alert record carries the CloudEvents Kafka binding's headers, equal to the body.
    for record, alert in zip(records, alerts, strict=True):
        headers = {name: value.decode() for name, value in record.headers}
        assert headers == {
            "ce_specversion": "1.0",
            "ce_id": alert["id"],
            "ce_source": alert["source"],
            "ce_type": alert["type"],
            "ce_time": alert["time"],
            "ce_subject": alert["subject"],
            "content-type": "application/cloudevents+json; charset=UTF-8",
        }, headers
        assert alert["data"]["currency"] == "HKD"

    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers[HEADER_STAGE] == b"decode"
    assert b"DistributionSnapshot" in headers[HEADER_ERROR]
    assert dead[0].value == b"\xff not protobuf" and dead[0].key == b"HK.00700"

    flow_values = [orjson.loads(r.value) for r in flows]
    assert {f["security"] for f in flow_values} <= set(WATCHLIST)
    assert all(f["window_s"] == WINDOW for f in flow_values)
    assert {f["currency"] for f in flow_values} == {"HKD"}
    garbage = b"\xff not protobuf"
    polled = [DistributionSnapshot.FromString(r.value) for r in snapshots if r.value != garbage]
    assert polled and {s.currency for s in polled} == {"HKD"}  # as the poller wrote them
    await sim.stop()
