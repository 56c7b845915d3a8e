"""Invalid snapshot records against a real broker and worker: dead letters with the
reason, and a far-future record no longer poisons its security."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.broker.local import free_port
from streams.kafka.topics import ensure_topics
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pipeline.deadletter import HEADER_ERROR, HEADER_STAGE
from tests.integration.harness import (
    Topics,
    metric,
    read_topic,
    start_worker,
    wait_for,
    workers_stopped,
)

pytestmark = pytest.mark.integration

SEC = "HK.00700"
T0 = 1_717_378_200.0  # 2024-06-03 09:30:00 HKT


def record(t: float, in_big: float, **fields: object) -> bytes:
    values: dict[str, object] = {
        "security": SEC, "market": "HK", "qot_market": 1, "code": "00700",
        "capital_in_big": in_big, "capital_out_big": 10.0, "update_timestamp": t,
        "trading_day": "2024-06-03", "source": "test",
    }  # fmt: skip
    values.update(fields)
    return DistributionSnapshot(**values).SerializeToString()  # type: ignore[arg-type]


async def test_far_future_record_is_dead_lettered_and_later_snapshots_still_flow(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    names = topics.names
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, list(names.values()), 3)
    good_before = [record(T0 + 60 * i, 100.0 * (i + 1)) for i in range(3)]
    bad = [
        record(4_102_444_800.0, 1.0, trading_day="2100-01-01"),  # 2100: used to poison
        record(T0 + 200, 1.0, trading_day="9999-99-99"),
        record(T0 + 210, -5e7),  # negative: must not act as a correction
    ]
    good_after = [record(T0 + 60 * i, 100.0 * (i + 1)) for i in range(3, 8)]
    late = record(T0 + 30, 50.0)  # older than the last accepted: stale, not a duplicate
    duplicate = good_after[-1]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for value in [*good_before, *bad, *good_after, late, duplicate]:
            await producer.send_and_wait(names["distribution"], value, key=SEC.encode())
    finally:
        await producer.stop()

    worker = start_worker(
        kafka_bootstrap, topics, f"capflow-{uuid.uuid4().hex[:8]}", tmp_path,
        opend_port=free_port(), watchlist=[SEC], extra=["--no-poller"],
    )  # fmt: skip
    with workers_stopped(worker):
        flows = await read_topic(
            kafka_bootstrap, names["flow"], until=lambda r: len(r) >= 8, timeout=120, settle=3
        )
        dead = await read_topic(
            kafka_bootstrap, names["deadletter"], until=lambda r: len(r) >= 3, timeout=30
        )
        processed = "capflow_snapshots_processed_total"
        try:
            await wait_for(
                lambda: metric(worker.web_port, processed, 'result="duplicate"') >= 1,
                30,
                "the duplicate to be counted",
            )
        except AssertionError:
            raise AssertionError(worker.tail()) from None
        counts = {
            r: metric(worker.web_port, processed, f'result="{r}"')
            for r in ("flow", "stale", "duplicate")
        }
        dead_count = metric(worker.web_port, "capflow_deadletters_total")
        assert worker.proc.poll() is None, worker.tail()

    values = [orjson.loads(r.value) for r in flows]
    assert [v["event_ts"] for v in values] == [T0 + 60 * i for i in range(8)], worker.tail()
    assert [v["net"]["big"] for v in values] == [100.0 * (i + 1) - 10.0 for i in range(8)]
    assert [r.value for r in dead] == bad
    errors = [dict(r.headers)[HEADER_ERROR].decode() for r in dead]
    assert all(dict(r.headers)[HEADER_STAGE] == b"decode" for r in dead)
    assert "ahead of the clock" in errors[0]
    assert "9999-99-99" in errors[1]
    assert "capital_in_big must be >= 0" in errors[2]
    assert counts == {"flow": 8, "stale": 1, "duplicate": 1}
    assert dead_count == 3
