"""Records the broker accepted reach dead letters whole; the worker goes on.

The worker creates the dead-letter topic with room for any record of the snapshot topic
plus the dead-letter headers, and sizes its producer to match: a 1,000,000-byte record,
and one as large as the snapshot topic takes, are stored whole. Only when an operator
set the dead-letter topic's ``max.message.bytes`` lower is a copy stored cut, with
headers that give the original size, SHA-256 and source offset. The snapshots after
them are still turned into flows.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.kafka.topics import ensure_topics
from streams.pipeline.deadletter import (
    HEADER_OFFSET,
    HEADER_ORIGINAL_SHA256,
    HEADER_ORIGINAL_SIZE,
    HEADER_STAGE,
    HEADER_TRUNCATED,
    record_size,
    topic_message_limit,
)
from tests.integration.harness import (
    ALERT_T0,
    Topics,
    Worker,
    minute_snapshot,
    read_topic,
    start_worker,
    workers_stopped,
)

pytestmark = pytest.mark.integration

SEC = "HK.00700"


def processing_worker(bootstrap: str, topics: Topics, tmp_path: Path) -> Worker:
    """A worker that only processes (no poller), with an app id of its own."""
    return start_worker(
        bootstrap, topics, f"capflow-dl-{uuid.uuid4().hex[:8]}", tmp_path,
        opend_port=1, watchlist=[SEC], extra=["--no-poller"],
    )  # fmt: skip


async def publish(bootstrap: str, topic: str, values: list[bytes]) -> list[Any]:
    """Write ``values`` keyed by SEC, in order; their record metadata."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2_000_000)
    await producer.start()
    try:
        return [await producer.send_and_wait(topic, v, key=SEC.encode()) for v in values]
    finally:
        await producer.stop()


async def create_deadletter_topic(bootstrap: str, name: str, max_message_bytes: int) -> None:
    """A dead-letter topic whose own limit is far below the producer's (an operator's choice)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        config = {"max.message.bytes": str(max_message_bytes)}
        await admin.create_topics([NewTopic(name, 3, 1, topic_configs=config)])
    finally:
        await admin.close()


def largest_value(key: bytes, limit: int) -> int:
    """Bytes of the largest value a record with ``key`` can have on a topic of ``limit``."""
    size = limit - record_size(key, b"", [])
    while record_size(key, b"\xfe" * size, []) > limit:
        size -= 1
    return size


async def test_records_as_large_as_the_snapshot_topic_takes_are_dead_lettered_whole(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    names = topics.names
    kafka = {"bootstrap_servers": kafka_bootstrap}
    # Every topic but the dead-letter one exists: the worker creates that one.
    await ensure_topics(kafka, [t for k, t in names.items() if k != "deadletter"], 3)
    source_limit = await topic_message_limit(kafka, names["distribution"])
    assert source_limit is not None
    huge = b"\xff" * 1_000_000  # not protobuf: a decode dead letter
    largest = b"\xfe" * largest_value(SEC.encode(), source_limit)
    values = [
        minute_snapshot(0),
        minute_snapshot(1),
        minute_snapshot(2),
        huge,
        largest,
        *map(minute_snapshot, (3, 4, 5)),
    ]
    metas = (await publish(kafka_bootstrap, names["distribution"], values))[3:5]

    worker = processing_worker(kafka_bootstrap, topics, tmp_path)
    with workers_stopped(worker):
        flows = await read_topic(
            kafka_bootstrap, names["flow"], until=lambda r: len(r) >= 6, timeout=120
        )
        dead = await read_topic(
            kafka_bootstrap, names["deadletter"], until=lambda r: len(r) >= 2, timeout=30
        )
        assert worker.proc.poll() is None, worker.tail()
    log = worker.log.read_text(errors="replace")
    # Before: MessageSizeTooLargeError crashed the agent, the record was in no topic.
    assert "crashed" not in log and "MessageSizeTooLarge" not in log, worker.tail(80)
    assert "never retrieved" not in log and "truncated" not in log, worker.tail(80)

    assert [orjson.loads(r.value)["event_ts"] for r in flows] == [
        ALERT_T0 + 60 * i for i in range(6)
    ]
    dead_limit = await topic_message_limit(kafka, names["deadletter"])
    assert dead_limit is not None and dead_limit > source_limit
    assert [(r.key, r.value) for r in dead] == [(SEC.encode(), huge), (SEC.encode(), largest)]
    for record, meta in zip(dead, metas, strict=True):
        headers = dict(record.headers)
        assert HEADER_TRUNCATED not in headers
        assert headers[HEADER_STAGE] == b"decode"
        assert headers[HEADER_OFFSET] == str(meta.offset).encode()


async def test_a_smaller_dead_letter_topic_limit_keeps_a_cut_copy(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """An operator created the dead-letter topic with a limit far below the record: the
    copy is cut to fit, with what is needed to find and check the original."""
    topics = Topics(topic_prefix)
    names = topics.names
    await create_deadletter_topic(kafka_bootstrap, names["deadletter"], 200_000)
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, list(names.values()), 3)
    huge = b"\xff" * 1_000_000
    meta, _ = await publish(kafka_bootstrap, names["distribution"], [huge, minute_snapshot(0)])

    worker = processing_worker(kafka_bootstrap, topics, tmp_path)
    with workers_stopped(worker):
        await read_topic(kafka_bootstrap, names["flow"], until=lambda r: len(r) >= 1, timeout=120)
        dead = await read_topic(
            kafka_bootstrap, names["deadletter"], until=lambda r: len(r) >= 1, timeout=30
        )
        assert worker.proc.poll() is None, worker.tail()
    assert len(dead) == 1
    record = dead[0]
    headers = dict(record.headers)
    assert record.key == SEC.encode()
    assert 190_000 < len(record.value) < 200_000 and huge.startswith(record.value)
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
    worker = processing_worker(kafka_bootstrap, topics, tmp_path)
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
            await producer.send_and_wait(
                names["distribution"], minute_snapshot(0), key=SEC.encode()
            )
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
