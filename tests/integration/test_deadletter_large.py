"""A 1,000,000-byte record the broker accepted reaches dead letters; the worker goes on.

Its dead-letter copy would exceed the producer's request limit: it is stored cut,
with headers that give the original size, SHA-256 and source offset, and the
snapshots after it are still turned into flows.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pipeline.deadletter import (
    HEADER_OFFSET,
    HEADER_ORIGINAL_SHA256,
    HEADER_ORIGINAL_SIZE,
    HEADER_STAGE,
    HEADER_TRUNCATED,
)
from streams.pipeline.topics import ensure_topics
from tests.integration.harness import Topics, read_topic, start_worker, workers_stopped

pytestmark = pytest.mark.integration

T0 = 1_717_378_200.0  # 2024-06-03 09:30 HKT
SEC = "HK.00700"


def snapshot(i: int) -> bytes:
    return DistributionSnapshot(
        security=SEC, market="HK", qot_market=1, code="00700",
        capital_in_big=1000.0 * i, update_timestamp=T0 + 60 * i, trading_day="2024-06-03",
        source="test",
    ).SerializeToString()  # fmt: skip


async def test_million_byte_record_is_dead_lettered_and_later_records_processed(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    names = topics.names
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, list(names.values()), 3)
    huge = b"\xff" * 1_000_000  # not protobuf: a decode dead letter
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=2_000_000)
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(names["distribution"], snapshot(i), key=SEC.encode())
        meta = await producer.send_and_wait(names["distribution"], huge, key=SEC.encode())
        for i in range(3, 6):
            await producer.send_and_wait(names["distribution"], snapshot(i), key=SEC.encode())
    finally:
        await producer.stop()

    worker = start_worker(
        kafka_bootstrap, 1, topics, [SEC], tmp_path,
        app_id=f"capflow-dl-{uuid.uuid4().hex[:8]}", extra=["--no-poller"],
    )  # fmt: skip
    with workers_stopped(worker):
        flows = await read_topic(
            kafka_bootstrap, names["flow"], until=lambda r: len(r) >= 6, timeout=120
        )
        dead = await read_topic(
            kafka_bootstrap, names["deadletter"], until=lambda r: len(r) >= 1, timeout=30
        )
        assert worker.proc.poll() is None, worker.tail()
    log = worker.log.read_text(errors="replace")
    # Before: MessageSizeTooLargeError crashed the agent, the record was in no topic.
    assert "crashed" not in log and "MessageSizeTooLarge" not in log, worker.tail(80)

    assert [orjson.loads(r.value)["event_ts"] for r in flows] == [T0 + 60 * i for i in range(6)]
    assert len(dead) == 1
    record = dead[0]
    headers = dict(record.headers)
    assert record.key == SEC.encode()
    assert 990_000 < len(record.value) < len(huge) and huge.startswith(record.value)
    assert headers[HEADER_STAGE] == b"decode"
    assert headers[HEADER_TRUNCATED] == b"value"
    assert headers[HEADER_ORIGINAL_SIZE] == b"1000000"
    assert headers[HEADER_ORIGINAL_SHA256] == hashlib.sha256(huge).hexdigest().encode()
    assert headers[HEADER_OFFSET] == str(meta.offset).encode()
