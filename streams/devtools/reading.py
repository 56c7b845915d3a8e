"""Reading topics back in tests and benchmarks, through aiokafka's public API only."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from streams.kafka.partitions import assign_whole_topic
from streams.kafka.reading import read_to_end as kafka_read_to_end


async def end_offsets(bootstrap: str, topic: str, timeout: float = 30.0) -> dict[int, int]:
    """Partition -> end offset of ``topic`` now ({} when the topic does not exist)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await assign_whole_topic(consumer, topic, timeout)
        ends = await consumer.end_offsets(tps) if tps else {}
        return {tp.partition: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


async def read_to_end(bootstrap: str, topic: str, timeout: float = 30.0) -> list[ConsumerRecord]:
    """Every record of ``topic`` from the beginning up to the end offsets it had when called.

    Raises TimeoutError if the end is not reached within ``timeout`` seconds.
    """
    return await kafka_read_to_end({"bootstrap_servers": bootstrap}, topic, timeout)


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord]], bool] | None = None,
    timeout: float = 60.0,
    settle: float = 0.0,
) -> list[ConsumerRecord]:
    """Records of ``topic`` from the start until ``until(records)`` holds (or timeout).

    For topics still being written. ``settle`` keeps reading that many seconds after
    ``until`` held, to catch extras (a duplicate alert, say).
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    settled_at: float | None = None
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
            if settled_at is None and until is not None and until(records):
                settled_at = time.monotonic() + settle
            if settled_at is not None and time.monotonic() >= settled_at:
                break
    finally:
        await consumer.stop()
    return records
