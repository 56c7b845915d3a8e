"""Which gateways are up, shared by every worker through the control topic.

Only a gateway's owner can see whether it answers (``streams.polling.health``), but
every worker needs the up set to compute the same spread of securities. The owner
writes the gateway's status (``{"gateway", "address", "up", "state", "reason", "since",
"worker"}``, keyed by label; ``state`` is up, down or sick, ``up`` is whether it is up)
to the gateway's own partition of the compacted control topic; every worker reads all
partitions from the beginning and keeps the latest status per gateway. A gateway
nobody has reported on yet counts as up; a status without ``state`` (an older worker's)
is up or down as its ``up`` says.

The rare case: for the moment a status takes to reach the other workers (well under
a second with the broker up), two workers may compute different spreads, so a
security may be polled by two gateways (a duplicate snapshot, which the flow
processor drops; each gateway still stays within its own budget) or by none. While
the broker is down the statuses cannot travel, but then no worker polls either
(ownership lapses, see ``streams.polling.ownership``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from streams.kafka.reading import follow
from streams.polling.gateways import Gateway
from streams.polling.health import DOWN, STATES, UP

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 5.0


def encode_status(gw: Gateway, state: str, reason: str, worker: str, since: float) -> bytes:
    return orjson.dumps(
        {
            "gateway": gw.label,
            "address": gw.address,
            "up": state == UP,
            "state": state,
            "reason": reason,
            "since": since,
            "worker": worker,
        }
    )


def decode_state(status: dict[str, Any]) -> tuple[str, str]:
    """(state, reason) of a status record; KeyError or TypeError when it has none."""
    state = status.get("state")
    if state not in STATES:
        state = UP if bool(status["up"]) else DOWN
    return str(state), str(status.get("reason") or "")


class GatewayStatusBoard:
    """The latest state (up, down, sick) of every gateway: written by owners, read by all."""

    def __init__(
        self,
        topic: str,
        gateways: Iterable[Gateway],
        client_kwargs: dict[str, Any],
        *,
        worker: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topic = topic
        self.gateways = list(gateways)
        self.worker = worker
        self._kwargs = client_kwargs
        self._clock = clock
        self._state: dict[str, tuple[str, str]] = {gw.label: (UP, "") for gw in self.gateways}
        self._since: dict[str, float] = {}
        self._addresses = {gw.label: gw.address for gw in self.gateways}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()

    def up_labels(self) -> list[str]:
        """Labels of the gateways that are up, in list order."""
        return [gw.label for gw in self.gateways if self.is_up(gw.label)]

    def is_up(self, label: str) -> bool:
        return self.state_of(label) == UP

    def state_of(self, label: str) -> str:
        return self._state.get(label, (UP, ""))[0]

    def reason_of(self, label: str) -> str:
        """Why the gateway is down or sick, in its owner's words (empty when up)."""
        return self._state.get(label, (UP, ""))[1]

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(acks="all", request_timeout_ms=10000, **self._kwargs)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            enable_auto_commit=False, auto_offset_reset="earliest", **self._kwargs
        )
        await self._consumer.start()
        self._consumer.assign([TopicPartition(self.topic, gw.index) for gw in self.gateways])
        await self._consumer.seek_to_beginning()
        self._reader = asyncio.create_task(self._read(), name="gateway-status-reader")

    async def stop(self) -> None:
        tasks = [t for t in (self._reader, *self._sends) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.stop(), PUBLISH_TIMEOUT_S)
        self._consumer = self._producer = None

    def report(self, gw: Gateway, state: str, reason: str = "") -> None:
        """This worker (the owner) saw ``gw`` go up, down or sick: apply now, tell the others."""
        now = self._clock()
        self._state[gw.label] = (state, reason)
        self._since[gw.label] = now
        log.log(
            logging.INFO if state == UP else logging.WARNING,
            "gateway %s (%s) is %s%s",
            gw.label,
            gw.address,
            state,
            f": {reason}" if reason else "",
        )
        if self._producer is None:
            return
        value = encode_status(gw, state, reason, self.worker, now)
        task = asyncio.create_task(self._send(gw, value))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, gw: Gateway, value: bytes) -> None:
        producer = self._producer
        if producer is None:
            return
        try:
            await asyncio.wait_for(
                producer.send_and_wait(
                    self.topic, value, key=gw.label.encode(), partition=gw.index
                ),
                PUBLISH_TIMEOUT_S,
            )
        except (KafkaError, TimeoutError) as exc:
            log.warning("cannot publish the status of gateway %s: %r", gw.label, exc)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the control topic (a status from whichever worker owns it)."""
        if key is None or value is None:
            return
        try:
            status = orjson.loads(value)
            label, state = str(status["gateway"]), decode_state(status)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring a malformed gateway status %r: %s", value[:200], exc)
            return
        if label not in self._state:
            log.warning("status for gateway %r, which this worker does not know", label)
            return
        address = status.get("address")
        if address and address != self._addresses[label]:
            log.error(
                "gateway %s is %s here but %s at worker %s: every worker must list the same "
                "gateways in the same order",
                label,
                self._addresses[label],
                address,
                status.get("worker"),
            )
        self._state[label] = state

    async def _read(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        await follow(consumer, self._take, f"the gateway statuses ({self.topic})")

    def _take(self, record: Any) -> None:
        if record.value is not None and _worker_of(record.value) == self.worker:
            return  # our own report was applied when it was made
        self.apply(record.key, record.value)


def _worker_of(value: bytes) -> str | None:
    try:
        worker = orjson.loads(value).get("worker")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return worker if isinstance(worker, str) else None
