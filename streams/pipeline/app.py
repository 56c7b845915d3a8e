"""The Faust application of a worker: topics, the state table, the agent, the poller task.

The web pages it serves are in ``streams.pipeline.views``; the polling service is
assembled in ``streams.polling.service``.

One table, keyed by security and backed by a changelog topic, holds each security's
flow history and detector regime. The agent reads snapshots, updates that state and
publishes flows and alerts; the polling service polls the OpenD gateways the
gateway group assigns this worker (``streams.polling.service``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faust
import faust.streams as faust_streams
from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from streams.observability.metrics import (
    ALERTS,
    CAPITAL_FLOW_RECORDS,
    DEAD_LETTERS,
    SNAPSHOTS_PROCESSED,
    STATE,
)
from streams.pipeline.batch import Batch
from streams.pipeline.deadletter import DeadLetter, topic_message_limit
from streams.pipeline.processor import (
    DecodeError,
    Incoming,
    SecurityProcessor,
    Unusable,
    security_of,
)
from streams.pipeline.views import register_views
from streams.pipeline.watchdog import OffsetProbe, StallWatchdog, exit_at_once, log_stalls
from streams.polling.service import PollingService
from streams.processing.events import alert_headers, parse_alert
from streams.settings import KafkaSettings, PipelineSettings

log = logging.getLogger(__name__)

STATE_TABLE = "security-state"
DEAD_LETTER_MARGIN = 1024  # bytes below the producer limit, for anything Faust adds
DEAD_LETTER_FALLBACK_BYTES = 64 * 1024  # when the broker refuses even that
# Records per batch, and how long a batch waits to fill: a lone snapshot (live polling,
# one a second) is processed within BATCH_WITHIN_S; a backlog goes BATCH_MAX at a time.
BATCH_MAX = 1000
BATCH_WITHIN_S = 0.005
PRODUCER_LINGER_MS = 2
PRODUCER_MAX_BATCH = 256 * 1024  # bytes per partition batch (aiokafka's default is 16 kB)
PRODUCER_MAX_REQUEST = 1_000_000  # Faust's default; raised to the dead-letter topic's limit


def _make_current(event: faust.EventT) -> None:
    """Make ``event`` the current event of this task, as ``stream.events()`` does.

    Faust derives a table write's partition (its changelog, its RocksDB shard) from
    the current event; a batch from ``take_events`` does not set one in the agent.
    Only the context variable is set: the stream's own ``current_event`` attribute
    belongs to the task filling the next batch.
    """
    faust_streams._current_event.set(weakref.ref(event))


def _raw_schema() -> faust.Schema:
    return faust.Schema(
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def _credentials(kafka: KafkaSettings) -> Any:
    """faust broker_credentials for SASL/SSL managed clusters (None for PLAINTEXT)."""
    protocol = kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    kwargs = kafka.client_kwargs
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password,
            mechanism=kafka.sasl_mechanism or "PLAIN",
            ssl_context=kwargs.get("ssl_context"),
        )
    return faust.SSLCredentials(kwargs["ssl_context"])


class Pipeline:
    """Builds and holds everything a worker runs, from its settings."""

    def __init__(self, config: PipelineSettings, *, dead_letter_limit: int | None = None) -> None:
        """``dead_letter_limit``: the dead-letter topic's max.message.bytes, when known;
        the producer is sized to it so a dead letter is stored whole."""
        self.config = config
        topics, worker = config.topics, config.worker
        partitions = topics.partitions
        datadir = Path(worker.data_dir) / f"worker-{worker.web_port}"
        datadir.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            worker.app_id,
            broker=config.kafka.brokers,
            broker_credentials=_credentials(config.kafka),
            store=worker.store,
            datadir=str(datadir),
            topic_partitions=partitions,
            topic_replication_factor=1,
            producer_acks=-1,
            # A moment's linger and room for more than a few 2 kB states let one
            # produce request carry many flows and state updates.
            producer_linger_ms=PRODUCER_LINGER_MS,
            producer_max_batch_size=PRODUCER_MAX_BATCH,
            producer_max_request_size=max(PRODUCER_MAX_REQUEST, dead_letter_limit or 0),
            broker_commit_interval=1.0,
            broker_session_timeout=worker.session_timeout,
            broker_heartbeat_interval=max(worker.session_timeout / 10, 0.5),
            consumer_auto_offset_reset="earliest",
            web_port=worker.web_port,
            web_bind="127.0.0.1",
            web_host="127.0.0.1",
        )
        # One Schema per topic: Faust may rewrite the serializers of a schema it is given.
        # One agent reads snapshots and capital-flow series: both keyed by security and
        # partitioned alike, so a security's records of both meet in one state.
        self.snapshots = self.app.topic(
            topics.distribution, topics.capitalflow, schema=_raw_schema(), partitions=partitions
        )
        self.flows = self.app.topic(topics.flow, schema=_raw_schema(), partitions=partitions)
        self.alerts = self.app.topic(topics.alerts, schema=_raw_schema(), partitions=partitions)
        self.deadletter = self.app.topic(
            topics.deadletter, schema=_raw_schema(), partitions=partitions
        )
        # bytes key and value types make Faust pick the raw codec for the changelog.
        self.state = self.app.Table(
            STATE_TABLE, default=None, partitions=partitions, key_type=bytes, value_type=bytes
        )
        # CLI/env values, then the thresholds file's defaults, markets and securities.
        self.processor = SecurityProcessor(config.flow.thresholds())
        self.polling: PollingService | None = PollingService(config) if worker.poller else None
        self._dead_letter_bytes: int | None = None
        self._minute_levels: dict[bytes, int] = {}  # per security processed here, for metrics
        self.progress: dict[Any, int] = {}  # partition -> offset of the record last taken up
        self.stall_exit: Callable[[str], None] = exit_at_once  # the worker sets its own
        self.watchdog = self._stall_watchdog()
        self._register()

    # -- stream processing ----------------------------------------------------------

    async def handle_batch(self, events: Sequence[faust.EventT]) -> None:
        """Process a batch of snapshot records; anything unprocessable goes to dead letters.

        Per security the state is decoded once, kept as objects while the batch's records
        are folded in, and stored once at the end (``Batch``). Flows are handed to the
        producer without waiting for each; alerts are awaited, all of them, before any
        state of the batch is stored, so a crash can repeat an alert but never lose one.
        Faust commits the batch's offsets only after this returns.
        """
        batch = Batch(self.processor, self.state.get)
        alerts: list[Any] = []  # futures of the alerts sent
        directions: list[str] = []  # of those alerts, counted once acknowledged
        flow_topic = self.flows.get_topic_name()
        progress = self.progress
        for event in events:
            _make_current(event)
            message = event.message
            progress[message.tp] = message.offset  # for the stall watchdog
            incoming = await self._decode(message)
            if incoming is None:
                continue
            key = security_of(incoming).encode()
            try:
                outcomes = batch.fold(key, incoming, event)
            except Exception as exc:  # a bug must not stop the worker: keep the record
                log.exception("processing %s failed", security_of(incoming))
                await self._dead_letter(message, "process", f"{type(exc).__name__}: {exc}")
                continue
            for outcome in outcomes:
                if outcome.flow is not None:
                    # Straight to the producer (Faust's topic.send adds a costly layer per
                    # record); the ack is not awaited, as before.
                    await self.app.producer.send(flow_topic, key, outcome.flow, None, None, None)
                for payload, direction in outcome.alerts():
                    headers = alert_headers(parse_alert(payload))  # CloudEvents binding
                    alerts.append(await self.alerts.send(key=key, value=payload, headers=headers))
                    directions.append(direction or "unknown")
                    log.info("alert %s", payload.decode())
        for result, count in batch.results.items():
            SNAPSHOTS_PROCESSED.labels(result).inc(count)
        # The broker has every alert of the batch before any state records it.
        if alerts:
            await asyncio.gather(*alerts)
            for direction in directions:
                ALERTS.labels(direction).inc()
        for key, event, blob in batch.states():
            _make_current(event)  # the table's partition is that of the record
            self.state[key] = blob
        self._minute_levels.update(batch.minute_levels())

    async def _decode(self, message: Any) -> Incoming | None:
        """A snapshot or capital-flow record as the processor takes it; None when it was
        dead-lettered (a capital-flow record that still names its security and receive
        time comes back as ``Unusable``, so snapshots waiting for it go on)."""
        series = message.topic == self.config.topics.capitalflow
        try:
            if series:
                decoded: Incoming = self.processor.decode_series(message.key, message.value)
                CAPITAL_FLOW_RECORDS.labels("accepted").inc()
                return decoded
            return self.processor.decode_polled(message.key, message.value)
        except DecodeError as exc:
            await self._dead_letter(message, "decode", str(exc))
            if series:
                CAPITAL_FLOW_RECORDS.labels("dead_letter").inc()
            if series and exc.security and exc.received_ms > 0:
                return Unusable(exc.security, exc.received_ms)
            return None

    async def _dead_letter(self, message: Any, stage: str, error: str) -> None:
        letter = DeadLetter(
            key=message.key,
            value=message.value,
            stage=stage,
            error=error,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
        )
        log.warning(
            "dead letter (%s) %s[%s]@%s: %s",
            stage,
            letter.topic,
            letter.partition,
            letter.offset,
            error,
        )
        DEAD_LETTERS.labels(stage).inc()
        try:
            await self._send_dead_letter(letter, await self._dead_letter_limit())
        except (ProducerSendError, MessageSizeTooLargeError) as exc:
            # The topic's limit was lowered since we asked: keep the first bytes at least.
            log.warning(
                "dead letter %s[%s]@%s refused (%s); storing its first bytes only",
                letter.topic,
                letter.partition,
                letter.offset,
                exc,
            )
            await self._send_dead_letter(letter, DEAD_LETTER_FALLBACK_BYTES)

    async def _dead_letter_limit(self) -> int:
        """Largest dead-letter copy that our producer and the topic both accept (asked once)."""
        if self._dead_letter_bytes is None:
            limit = int(self.app.conf.producer_max_request_size)
            try:
                topic_limit = await topic_message_limit(
                    self.config.kafka.client_kwargs, self.config.topics.deadletter
                )
            except Exception as exc:  # the producer's limit still holds
                log.warning(
                    "max.message.bytes of %s unknown: %r", self.config.topics.deadletter, exc
                )
                topic_limit = None
            if topic_limit is not None:
                limit = min(limit, topic_limit)
            self._dead_letter_bytes = limit - DEAD_LETTER_MARGIN
        return self._dead_letter_bytes

    async def _send_dead_letter(self, letter: DeadLetter, limit: int) -> None:
        key, value, headers = letter.fitted(limit)
        if value is not letter.value:
            log.warning(
                "dead letter %s[%s]@%s: value of %d bytes stored truncated to %d",
                letter.topic,
                letter.partition,
                letter.offset,
                len(letter.value or b""),
                len(value or b""),
            )
        # Through the producer itself: a refusal then raises here, once, instead of also
        # failing a Faust message future that nobody awaits.
        producer = self.app.producer
        fut = await producer.send(self.config.topics.deadletter, key, value, None, None, headers)
        await fut

    # -- wiring ---------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app

        @app.agent(self.snapshots, name="flow-processor")
        async def flow_processor(stream: faust.StreamT) -> None:
            assert isinstance(stream, faust.Stream)  # StreamT does not declare take_events
            async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
                await self.handle_batch(events)

        if self.polling is not None:

            @app.task
            async def poll() -> None:
                await self.run_poller()

        @app.task
        async def watch_stalls() -> None:
            self.watchdog.start()

        register_views(app, self.polling, self.state)
        STATE.lag = self._lag
        STATE.minute_levels = lambda: sum(self._minute_levels.values())

    def _stall_watchdog(self) -> StallWatchdog:
        """Checks that every owned partition the agent reads (snapshots, capital-flow
        series) with lag processes records."""
        config = self.config
        app = self.app
        return StallWatchdog(
            lambda: OffsetProbe(config.kafka.client_kwargs, config.worker.app_id),
            topics=(config.topics.distribution, config.topics.capitalflow),
            timeout=config.worker.stall_timeout,
            owned=lambda: app.consumer.assignment(),
            processed=self.progress,
            busy=lambda: bool(app.rebalancing or getattr(app, "in_recovery", False)),
            on_report=self._on_stalls,
        )

    def _on_stalls(self, report: Any) -> None:
        """In the watchdog's thread: log, count, and exit if so configured."""
        reason = log_stalls(report)
        if reason is not None and self.config.worker.stall_action == "exit":
            self.stall_exit(reason)

    def before_stop(self) -> None:
        """First thing on SIGTERM: stop polling (the budget), and judging stalls."""
        self.watchdog.stop()
        if self.polling is not None:
            self.polling.stop_polling()

    def _lag(self) -> dict[str, int]:
        consumer = self.app.consumer
        out: dict[str, int] = {}
        for tp in consumer.assignment():
            if tp.topic != self.config.topics.distribution:
                continue
            high = consumer.highwater(tp)
            committed = getattr(consumer, "_committed_offset", {}).get(tp)
            if high is not None:
                out[f"{tp.topic}/{tp.partition}"] = max(0, high - (committed or 0))
        return out

    async def run_poller(self) -> None:
        """Poll the gateways this worker owns until the app stops (see PollingService)."""
        polling = self.polling
        assert polling is not None
        STATE.budget = polling.pool.budget
        STATE.last_received = polling.pool.last_received
        STATE.gateways = polling.pool.status
        STATE.rejections = polling.pool.rejections
        STATE.markets = lambda: polling.pool.markets(time.time())
        await polling.run()
