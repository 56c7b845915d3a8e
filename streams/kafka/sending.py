"""One record written until the broker acknowledges it, waiting out outages.

A record capflow must not lose (a snapshot, a capital-flow series, an alert a sink
gave up on) is sent with acks=all and retried on the one retry schedule
(:class:`streams.timing.backoff.Backoff`) until Kafka has it: a broker restart delays
it but loses nothing, and the caller (the poller, which then spends no OpenD budget;
the alert follower, which commits only afterwards) waits meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.timing.backoff import Backoff

log = logging.getLogger(__name__)

KAFKA_BACKOFF = Backoff(initial=0.5, cap=10.0, jitter=0.2)

Sleep = Callable[[float], Awaitable[Any]]


async def send_acknowledged(
    producer: Any,
    topic: str,
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes]] | None = None,
    backoff: Backoff = KAFKA_BACKOFF,
    sleep: Sleep = asyncio.sleep,
) -> int:
    """Send until acknowledged; how many attempts failed first (0: at once).

    ``sleep`` waits between attempts; one that raises (a stopping command's) ends the
    retries with its exception.
    """
    retry = backoff.waits()
    while True:
        try:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
            return retry.attempts
        except KafkaError as exc:
            wait = retry.next_wait()
            log.warning(
                "writing to %s failed (%s: %s); retrying in %.1fs",
                topic,
                type(exc).__name__,
                exc,
                wait,
            )
            await sleep(wait)


class AckedPublisher:
    """One idempotent producer for one topic; :meth:`publish` returns once Kafka has it."""

    def __init__(
        self,
        topic: str,
        client_kwargs: dict[str, Any],
        *,
        backoff: Backoff = KAFKA_BACKOFF,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.topic = topic
        self._kwargs = client_kwargs
        self._backoff = backoff
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
        """Write one record keyed ``key``; retries until the broker acknowledges it."""
        if self._producer is None:
            raise RuntimeError("AckedPublisher.start() was not awaited")
        self.retries += await send_acknowledged(
            self._producer,
            self.topic,
            value,
            key=key.encode(),
            backoff=self._backoff,
            sleep=self._sleep,
        )
        self.published += 1
