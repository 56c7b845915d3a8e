"""All partitions of one topic assigned to a group-less consumer, by aiokafka's public API.

Readers that go through a whole topic (``capflow record``, ``capflow plot``, the dev
harness) need every partition without joining a consumer group or committing.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition


async def assign_whole_topic(
    consumer: AIOKafkaConsumer, topic: str, timeout: float = 30.0
) -> list[TopicPartition]:
    """Every partition of ``topic``, assigned to ``consumer``; [] if the topic does not exist.

    The topic list is checked first: subscribing to an unknown topic could auto-create it.
    Raises TimeoutError when no partition is assigned within ``timeout`` seconds.
    """
    if topic not in await consumer.topics():
        return []
    consumer.subscribe([topic])  # without a group, every partition comes to this consumer
    deadline = time.monotonic() + timeout
    while not consumer.assignment():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no partitions of {topic} assigned after {timeout:g}s")
        await asyncio.sleep(0.05)
    return sorted(consumer.assignment())
