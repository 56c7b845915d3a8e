"""One record written until the broker acknowledges it, waiting out outages.

A record capflow must not lose (a snapshot, a capital-flow series, an alert a sink
gave up on) is sent with acks=all and retried on the one retry schedule
(:class:`streams.timing.backoff.Backoff`) until Kafka has it: a broker restart delays
it but loses nothing, and the caller (the poller, which then spends no OpenD budget;
the alert follower, which commits only afterwards) waits meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)

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


# After these aiokafka's sender task has stopped for good (the idempotent numbering no
# longer matches the broker's, e.g. a batch that failed in a long outage spent its
# sequence number): every later send on that producer fails the same way.
PRODUCER_STOPPED: tuple[type[KafkaError], ...] = (
    OutOfOrderSequenceNumber,
    ProducerFenced,
    InvalidProducerEpoch,
    UnknownProducerId,
)


class AckedPublisher:
    """One idempotent producer for one topic; :meth:`publish` returns once Kafka has it.

    A producer that stopped for good (:data:`PRODUCER_STOPPED`) is replaced by a new one
    (a new producer id, numbering from zero) and the record is sent again on it: at
    least once, as every retry here.
    """

    def __init__(
        self,
        topic: str,
        client_kwargs: dict[str, Any],
        *,
        backoff: Backoff = KAFKA_BACKOFF,
        sleep: Sleep = asyncio.sleep,
        request_timeout_ms: int = 15000,
        make_producer: Callable[[], Any] | None = None,
    ) -> None:
        self.topic = topic
        self._backoff = backoff
        self._sleep = sleep
        self._make = make_producer or (
            lambda: AIOKafkaProducer(
                acks="all",
                enable_idempotence=True,
                request_timeout_ms=request_timeout_ms,
                **client_kwargs,
            )
        )
        self._producer: Any = None
        self._started = False
        self.published = 0
        self.retries = 0
        self.replaced = 0  # producers that stopped for good and were replaced

    async def start(self) -> None:
        self._started = True
        await self._current()

    async def stop(self) -> None:
        self._started = False
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def publish(self, key: str, value: bytes) -> None:
        """Write one record keyed ``key``; retries until the broker acknowledges it."""
        if not self._started:
            raise RuntimeError("AckedPublisher.start() was not awaited")
        self.retries += await send_acknowledged(
            self, self.topic, value, key=key.encode(), backoff=self._backoff, sleep=self._sleep
        )
        self.published += 1

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Any:
        """The current producer's send (what :func:`send_acknowledged` retries); a
        producer that stopped for good is dropped, the next attempt starts a new one."""
        producer = await self._current()
        try:
            return await producer.send_and_wait(topic, value, key=key, headers=headers)
        except PRODUCER_STOPPED as exc:
            log.warning(
                "the producer of %s stopped for good (%s); a new one takes over",
                topic,
                type(exc).__name__,
            )
            self._producer = None
            self.replaced += 1
            with contextlib.suppress(Exception):  # its sender is gone: stop returns soon
                await producer.stop()
            raise

    async def _current(self) -> Any:
        """The producer to send on, started now if the last one was dropped."""
        if self._producer is None:
            producer = self._make()
            try:
                await producer.start()  # a KafkaError here is one more failed attempt
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer
