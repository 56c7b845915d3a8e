"""A 1,000,000-byte record the broker accepted reaches dead letters; the worker goes on.

Its dead-letter copy would exceed the producer's request limit (or the dead-letter
topic's own ``max.message.bytes``, when an operator set it lower): it is stored cut,
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
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

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


async def create_deadletter_topic(bootstrap: str, name: str, max_message_bytes: int) -> None:
    """A dead-letter topic whose own limit is far below the producer's (an operator's choice)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        config = {"max.message.bytes": str(max_message_bytes)}
        await admin.create_topics([NewTopic(name, 3, 1, topic_configs=config)])
    finally:
        await admin.close()


@pytest.mark.parametrize(
    ("topic_limit", "kept"),
    [(None, (990_000, 1_000_000)), (200_000, (190_000, 200_000))],
    ids=["producer-limit", "smaller-topic-limit"],
)
async def test_million_byte_record_is_dead_lettered_and_later_records_processed(
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    topic_limit: int | None,
    kept: tuple[int, int],
) -> None:
    topics = Topics(topic_prefix)
    names = topics.names
    if topic_limit is not None:
        await create_deadletter_topic(kafka_bootstrap, names["deadletter"], topic_limit)
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
    assert "never retrieved" not in log, worker.tail(80)

    assert [orjson.loads(r.value)["event_ts"] for r in flows] == [T0 + 60 * i for i in range(6)]
    assert len(dead) == 1
    record = dead[0]
    headers = dict(record.headers)
    assert record.key == SEC.encode()
    assert kept[0] < len(record.value) < kept[1] and huge.startswith(record.value)
    assert headers[HEADER_STAGE] == b"decode"
    assert headers[HEADER_TRUNCATED] == b"value"
    assert headers[HEADER_ORIGINAL_SIZE] == b"1000000"
    assert headers[HEADER_ORIGINAL_SHA256] == hashlib.sha256(huge).hexdigest().encode()
    assert headers[HEADER_OFFSET] == str(meta.offset).encode()


async def test_limit_lowered_while_running_still_keeps_the_record(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The worker learned the topic's limit at its first dead letter; an operator then
    lowers it. The next copy is refused once and stored with its first 64 KiB."""
    topics = Topics(topic_prefix)
    names = topics.names
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, list(names.values()), 3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=2_000_000)
    await producer.start()
    worker = start_worker(
        kafka_bootstrap, 1, topics, [SEC], tmp_path,
        app_id=f"capflow-dl-{uuid.uuid4().hex[:8]}", extra=["--no-poller"],
    )  # fmt: skip
    try:
        with workers_stopped(worker):
            await producer.send_and_wait(names["distribution"], b"\xff" * 300_000, key=b"a")
            await read_topic(
                kafka_bootstrap, names["deadletter"], until=lambda r: len(r) >= 1, timeout=120
            )
            admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
            await admin.start()
            try:
                limit = {"max.message.bytes": "100000"}
                await admin.alter_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, names["deadletter"], limit)]
                )
            finally:
                await admin.close()
            huge = b"\xfe" * 300_000
            meta = await producer.send_and_wait(names["distribution"], huge, key=b"b")
            await producer.send_and_wait(names["distribution"], snapshot(0), key=SEC.encode())
            dead = await read_topic(
                kafka_bootstrap, names["deadletter"], until=lambda r: len(r) >= 2, timeout=60
            )
            flows = await read_topic(
                kafka_bootstrap, names["flow"], until=lambda r: len(r) >= 1, timeout=60
            )
            assert worker.proc.poll() is None, worker.tail()
    finally:
        await producer.stop()
    log = worker.log.read_text(errors="replace")
    assert "crashed" not in log and "never retrieved" not in log, worker.tail(80)
    assert "refused" in log  # the one refusal, answered by the smaller copy
    assert len(flows) == 1
    second = next(r for r in dead if r.key == b"b")
    headers = dict(second.headers)
    assert 60_000 < len(second.value) <= 64 * 1024 and huge.startswith(second.value)
    assert headers[HEADER_ORIGINAL_SIZE] == b"300000"
    assert headers[HEADER_OFFSET] == str(meta.offset).encode()
