"""Flow feedback against the real broker: new flows reach the scheduler, old ones do not."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.polling.flow_feedback import FlowFeedback
from streams.processing.events import FLOW_SCHEMA

pytestmark = pytest.mark.integration


class Recorder:
    """A scheduler that only records what it is told."""

    def __init__(self) -> None:
        self.flows: list[tuple[str, float]] = []

    def next(self, due: Sequence[str], now: float) -> str | None:
        return due[0] if due else None

    def polled(self, security: str, now: float) -> None:
        return None

    def observe_flow(self, security: str, flow: Mapping[str, Any]) -> None:
        self.flows.append((security, float(flow["event_ts"])))


def _flow(security: str, t: float) -> bytes:
    return orjson.dumps({"schema": FLOW_SCHEMA, "security": security, "event_ts": t})


async def test_follows_new_flows_on_every_partition(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}.flow"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    recorder = Recorder()
    feedback = FlowFeedback(topic, recorder, {"bootstrap_servers": kafka_bootstrap})
    try:
        # Written before the feedback starts: history, never fed to the scheduler.
        for p in range(3):
            await producer.send_and_wait(topic, _flow("HK.00001", 1.0), partition=p)
        await feedback.start()
        await producer.send_and_wait(topic, b"not json", partition=0)
        await producer.send_and_wait(topic, orjson.dumps({"schema": "other"}), partition=1)
        expected = []
        for i in range(9):
            sec = f"HK.{i:05d}"
            await producer.send_and_wait(topic, _flow(sec, 100.0 + i), partition=i % 3)
            expected.append((sec, 100.0 + i))
        for _ in range(200):
            if len(recorder.flows) >= len(expected):
                break
            await asyncio.sleep(0.05)
        assert sorted(recorder.flows) == sorted(expected)
        assert feedback.records == 9
        assert feedback.bad == 2
    finally:
        await feedback.stop()
        await producer.stop()
    await feedback.stop()  # idempotent


async def test_missing_topic_is_a_clear_error(kafka_bootstrap: str, topic_prefix: str) -> None:
    feedback = FlowFeedback(
        f"{topic_prefix}.absent", Recorder(), {"bootstrap_servers": kafka_bootstrap}
    )
    with pytest.raises(ValueError, match="has no partitions"):
        await feedback.start(timeout=1.0)
