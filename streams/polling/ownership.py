"""Who polls which gateway: Kafka consumer-group assignment of the control topic.

The control topic has one partition per gateway. Every polling worker joins one
consumer group on it (``<app_id>.gateways``); whoever the group assigns partition k
owns gateway k. Kafka's group protocol gives each partition to exactly one member
of a generation and hands a dead member's partitions over after the session
timeout, so there is no election of our own.

Two gaps the group protocol leaves, and how they are closed:

- A revoked owner must stop before the rebalance completes: the rebalance listener
  marks the gateways unowned first (pollers check before every send) and then waits
  for the pollers to stop.
- A worker cut off from Kafka does not learn it was replaced: the group reassigns
  its partitions ``session_timeout`` after its last heartbeat while it still believes
  it owns them. So ownership is also a lease: a commit to the group (accepted only
  from a member of the current generation) renews it, and it lapses
  ``session_timeout / 2`` after the last accepted commit was sent: the worker stops
  polling well before the group can give its gateways to another worker.

A new owner still waits one rate-limit window before its first request
(``--leader-grace``), since the previous owner may have spent that window. A gateway
that a rebalance takes away and gives straight back (revoked in generation g,
assigned again in g + 1) had no other owner in between, so it goes on without that
wait: its limiter still holds this worker's own requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)

Gateways = Callable[[set[int]], Awaitable[None]]
Assigned = Callable[[set[int], set[int]], Awaitable[None]]  # (new, continuing)


class ControlTopicError(RuntimeError):
    """The control topic exists with another partition count than gateways configured."""


async def ensure_control_topic(client_kwargs: dict[str, Any], topic: str, gateways: int) -> None:
    """Create the compacted control topic with one partition per gateway, or check it."""
    admin = AIOKafkaAdminClient(**client_kwargs)
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            topic,
                            num_partitions=gateways,
                            replication_factor=1,
                            topic_configs={"cleanup.policy": "compact"},
                        )
                    ]
                )
                log.info("created control topic %s with %d partitions", topic, gateways)
        count = 0
        for _ in range(20):  # a topic just created may show no partitions for a moment
            count = sum(len(desc["partitions"]) for desc in await admin.describe_topics([topic]))
            if count:
                break
            await asyncio.sleep(0.5)
        if count != gateways:
            raise ControlTopicError(
                f"control topic {topic} has {count} partitions but {gateways} gateways are "
                "configured: every worker of a group must list the same gateways; for a "
                "new gateway list use a new --gateway-topic"
            )
    finally:
        await admin.close()


class _Listener(ConsumerRebalanceListener):
    def __init__(self, ownership: GatewayOwnership) -> None:
        self.ownership = ownership

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.ownership._revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.ownership._assigned({tp.partition for tp in assigned})


class GatewayOwnership:
    """The gateways (control partitions) this worker owns, from the consumer group."""

    def __init__(
        self,
        topic: str,
        group_id: str,
        client_kwargs: dict[str, Any],
        *,
        session_timeout: float,
        on_assigned: Assigned,
        on_revoked: Gateways,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topic = topic
        self.group_id = group_id
        self.session_timeout = session_timeout
        self.lease = session_timeout / 2
        self._kwargs = client_kwargs
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._clock = clock
        self._owned: set[int] = set()
        self._released_in: dict[int, int] = {}  # gateway -> generation it was revoked in
        self._confirmed_at = float("-inf")
        self._consumer: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lapsed_logged = False

    @property
    def owned(self) -> set[int]:
        return set(self._owned)

    def owns(self, index: int) -> bool:
        """True while the group assigns gateway ``index`` here and the lease holds."""
        if index not in self._owned:
            return False
        if self._clock() - self._confirmed_at < self.lease:
            self._lapsed_logged = False
            return True
        if not self._lapsed_logged:
            self._lapsed_logged = True
            log.warning(
                "the group has not confirmed this worker's ownership for %.1fs: "
                "no gateway is polled until it does",
                self.lease,
            )
        return False

    async def start(self) -> None:
        session_ms = int(self.session_timeout * 1000)
        self._consumer = AIOKafkaConsumer(
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(session_ms // 10, 100),
            **self._kwargs,
        )
        await self._consumer.start()
        self._consumer.subscribe([self.topic], listener=_Listener(self))
        self._tasks = [
            asyncio.create_task(self._poll(), name="gateway-ownership-poll"),
            asyncio.create_task(self._renew(), name="gateway-ownership-lease"),
        ]

    async def stop(self, timeout: float = 10.0) -> None:
        """Release every gateway (pollers stop first), then leave the group."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._owned:
            await self._revoked(set(self._owned))
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await asyncio.wait_for(consumer.stop(), timeout)
            except (TimeoutError, KafkaError) as exc:
                log.warning("leaving the gateway group did not finish: %r", exc)

    def _generation(self) -> int:
        """The group generation this member is in (-1 when unknown or reset)."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        generation = getattr(coordinator, "generation", -1)
        return generation if isinstance(generation, int) else -1

    async def _revoked(self, partitions: set[int]) -> None:
        lost = partitions & self._owned
        self._owned -= lost  # first: no poller may send from here on
        generation = self._generation()
        for k in lost:
            self._released_in[k] = generation
        if lost:
            log.info("gateways %s revoked from this worker", sorted(lost))
            await self._on_revoked(lost)

    async def _assigned(self, partitions: set[int]) -> None:
        # The group just accepted this member (SyncGroup): the lease starts now.
        self._confirmed_at = self._clock()
        new = partitions - self._owned
        self._owned |= partitions
        generation = self._generation()
        continuing = {
            k for k in new if generation > 0 and self._released_in.get(k, -1) == generation - 1 > 0
        }
        if new:
            log.info(
                "gateways %s assigned to this worker (generation %d; %s kept from the last)",
                sorted(new),
                generation,
                sorted(continuing) or "none",
            )
            await self._on_assigned(new, continuing)

    async def _poll(self) -> None:
        """Drive the consumer (the control records themselves are read by the status board)."""
        assert self._consumer is not None
        while True:
            try:
                await self._consumer.getmany(timeout_ms=500)
            except KafkaError as exc:
                log.warning("gateway group consumer: %r", exc)
                await asyncio.sleep(1.0)

    async def _renew(self) -> None:
        """Renew the lease: a commit the group accepts proves this member is current."""
        consumer = self._consumer
        assert consumer is not None
        every = max(min(self.lease / 3, 1.0), 0.1)
        while True:
            await asyncio.sleep(every)
            owned = set(self._owned)
            if not owned:
                continue
            sent_at = self._clock()
            offsets = {TopicPartition(self.topic, k): 0 for k in owned}
            try:
                await asyncio.wait_for(consumer.commit(offsets), self.lease)
            except (KafkaError, TimeoutError) as exc:
                log.debug("lease renewal failed: %r", exc)
                continue
            if owned <= self._owned:
                self._confirmed_at = max(self._confirmed_at, sent_at)
