"""Flow feedback: the poller's scheduler reads ``capflow.flow.v1`` back from Kafka.

The adaptive scheduler decides from the flow state the processors publish (regime,
R_W, threshold), so the poller follows the flow topic. It reads from the end, with no
consumer group (a subscription without a group gets every partition, nothing is
committed): each worker
needs every flow of the securities it polls, only new ones matter, and a group would
share the partitions out between workers instead. A short fetch wait keeps the
feedback a few milliseconds behind the poll that produced it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer

from streams.kafka.reading import follow
from streams.processing.events import parse_flow

log = logging.getLogger(__name__)


class FlowObserver(Protocol):
    """Who reads the flows: a scheduler, or the gateway pool (every gateway's scheduler)."""

    def observe_flow(self, security: str, flow: Mapping[str, Any]) -> None: ...


class FlowFeedback:
    """Feeds every new flow record to ``scheduler.observe_flow``; start, then stop."""

    def __init__(
        self,
        topic: str,
        scheduler: FlowObserver,
        kafka_kwargs: dict[str, Any],
        *,
        fetch_wait_ms: int = 20,
    ) -> None:
        self.topic = topic
        self.scheduler = scheduler
        self._kafka_kwargs = kafka_kwargs
        self._fetch_wait_ms = fetch_wait_ms
        # Made in start(): aiokafka needs the running loop, and a worker builds its
        # polling service before Faust starts the loop.
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.records = 0
        self.bad = 0

    async def start(self, timeout: float = 10.0) -> None:
        """Connect, take every partition of the topic and position at its end."""
        consumer = AIOKafkaConsumer(
            **self._kafka_kwargs,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=self._fetch_wait_ms,
        )
        await consumer.start()
        try:
            # Without a group, a subscription is assigned every partition of the topic.
            consumer.subscribe([self.topic])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not consumer.assignment():
                if loop.time() > deadline:
                    raise ValueError(
                        f"flow topic {self.topic!r} has no partitions (does it exist?)"
                    )
                await asyncio.sleep(0.05)
            assigned = sorted(consumer.assignment())
            await consumer.seek_to_end(*assigned)
            for tp in assigned:  # resolve the end offsets now, not at the first fetch
                await consumer.position(tp)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="flow-feedback")
        log.info("flow feedback: following %s (%d partitions)", self.topic, len(assigned))

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        # The broker away: polling goes on, and the feedback resumes when it is back.
        await follow(consumer, lambda r: self._feed(r.key, r.value), f"the flow topic {self.topic}")

    def _feed(self, key: bytes | None, value: bytes | None) -> None:
        try:
            flow = parse_flow(value or b"")
            security = str(flow["security"])
        except (ValueError, KeyError, TypeError):
            self.bad += 1
            log.debug("flow feedback: skipping a record that is not a flow (key %r)", key)
            return
        self.records += 1
        self.scheduler.observe_flow(security, flow)

    async def stop(self) -> None:
        """Stop reading and close the consumer (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
