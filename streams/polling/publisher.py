"""Publishes snapshots to Kafka with acks=all and idempotence, waiting out broker outages.

A snapshot that could not be written is retried until it is, so a broker restart
delays snapshots but loses none; the poller waits meanwhile and spends no budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


class SnapshotPublisher:
    """Thin owner of one idempotent producer for the snapshot topic."""

    def __init__(
        self,
        topic: str,
        client_kwargs: dict[str, Any],
        *,
        backoff_max: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.topic = topic
        self._kwargs = client_kwargs
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._producer: AIOKafkaProducer | None = None
        self.published = 0
        self.retries = 0

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=15000,
            **self._kwargs,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, key: str, value: bytes) -> None:
        """Write one record; retries with backoff until the broker acknowledges it."""
        if self._producer is None:
            raise RuntimeError("SnapshotPublisher.start() was not awaited")
        delay = 0.5
        while True:
            try:
                await self._producer.send_and_wait(self.topic, value, key=key.encode())
                self.published += 1
                return
            except KafkaError as exc:
                self.retries += 1
                log.warning(
                    "publishing %s to %s failed (%r); retry in %.1fs", key, self.topic, exc, delay
                )
                await self._sleep(delay)
                delay = min(delay * 2, self._backoff_max)
