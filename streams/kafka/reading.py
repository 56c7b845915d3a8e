"""Reading a topic without a consumer group: to its end, or on in the background.

Readers that go through a whole topic (``capflow record``, ``capflow plot``, the dev
harness) take every partition, read from the beginning and stop at the end offsets
the topic had when they started. Followers (the flow feedback of the schedulers, the
gateway status board) hand every new record to a callback until they are stopped,
waiting out a broker that goes away on the one retry schedule.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError

from streams.kafka.partitions import assign_whole_topic
from streams.kafka.sending import KAFKA_BACKOFF
from streams.timing.backoff import Backoff

log = logging.getLogger(__name__)


class TopicMissing(LookupError):
    """The topic a reader was asked for does not exist."""


async def read_batches(
    client_kwargs: dict[str, Any],
    topic: str,
    *,
    timeout: float = 60.0,
    follow: bool = False,
) -> AsyncIterator[list[ConsumerRecord]]:
    """The records of ``topic`` from its beginning, a fetch at a time, up to the end
    offsets it had when reading started (``follow``: on until the caller stops).

    Raises TopicMissing for a topic that does not exist and TimeoutError when the end is
    not reached within ``timeout`` seconds (``inf``: however long it takes).
    """
    consumer = AIOKafkaConsumer(
        group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **client_kwargs
    )
    await consumer.start()
    try:
        tps = await assign_whole_topic(consumer, topic, min(timeout, 30.0))
        if not tps:
            raise TopicMissing(f"topic {topic} does not exist")
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while follow or any([await consumer.position(tp) < ends[tp] for tp in tps]):
            if not follow and time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout:g}s")
            fetched = await consumer.getmany(timeout_ms=500)
            batch = [
                r for tp, recs in fetched.items() for r in recs if follow or r.offset < ends[tp]
            ]
            if batch:
                yield batch
    finally:
        await consumer.stop()


async def read_to_end(
    client_kwargs: dict[str, Any], topic: str, timeout: float = 30.0
) -> list[ConsumerRecord]:
    """Every record of ``topic`` up to the end offsets it had when called ([] when the
    topic does not exist)."""
    records: list[ConsumerRecord] = []
    try:
        async for batch in read_batches(client_kwargs, topic, timeout=timeout):
            records.extend(batch)
    except TopicMissing:
        return []
    return records


async def follow(
    consumer: AIOKafkaConsumer,
    handle: Callable[[ConsumerRecord], None],
    what: str,
    backoff: Backoff = KAFKA_BACKOFF,
) -> None:
    """Hand every record ``consumer`` fetches to ``handle`` until cancelled; a broker
    that does not answer is retried (the consumer keeps its positions)."""
    retry = backoff.waits()
    while True:
        try:
            fetched = await consumer.getmany(timeout_ms=500)
        except KafkaError as exc:
            wait = retry.next_wait()
            log.warning("reading %s failed (%r); retrying in %.1fs", what, exc, wait)
            await asyncio.sleep(wait)
            continue
        retry.reset()
        for records in fetched.values():
            for record in records:
                handle(record)
