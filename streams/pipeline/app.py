"""The Faust application of a worker: topics, the state table, the agent, the poller task.

One table, keyed by security and backed by a changelog topic, holds each security's
flow history and detector regime. The agent reads snapshots, updates that state and
publishes flows and alerts; the polling service polls the OpenD gateways the
gateway group assigns this worker (``streams.polling.service``).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import faust
from faust.web import Request, Response, View

from streams.config import kafka_client_kwargs
from streams.metrics import ALERTS, DEAD_LETTERS, SNAPSHOTS_PROCESSED, STATE, exposition
from streams.pipeline.deadletter import DeadLetter
from streams.pipeline.processor import DecodeError, SecurityProcessor
from streams.polling.service import PollingService
from streams.processing.thresholds import ThresholdConfig

log = logging.getLogger(__name__)

STATE_TABLE = "security-state"


def _raw_schema() -> faust.Schema:
    return faust.Schema(
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def _credentials(args: argparse.Namespace) -> Any:
    """faust broker_credentials for SASL/SSL managed clusters (None for PLAINTEXT)."""
    protocol = args.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    kwargs = kafka_client_kwargs(args)
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=args.kafka_sasl_username,
            password=args.kafka_sasl_password,
            mechanism=args.kafka_sasl_mechanism or "PLAIN",
            ssl_context=kwargs.get("ssl_context"),
        )
    return faust.SSLCredentials(kwargs["ssl_context"])


class Pipeline:
    """Builds and holds everything a worker runs, from the parsed settings."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        partitions = args.topic_partitions
        brokers = [f"kafka://{b.strip()}" for b in args.kafka_bootstrap.split(",")]
        datadir = Path(args.data_dir) / f"worker-{args.web_port}"
        datadir.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            args.app_id,
            broker=brokers,
            broker_credentials=_credentials(args),
            store=args.store,
            datadir=str(datadir),
            topic_partitions=partitions,
            topic_replication_factor=1,
            producer_acks=-1,
            broker_commit_interval=1.0,
            broker_session_timeout=args.session_timeout,
            broker_heartbeat_interval=max(args.session_timeout / 10, 0.5),
            consumer_auto_offset_reset="earliest",
            web_port=args.web_port,
            web_bind="127.0.0.1",
            web_host="127.0.0.1",
        )
        # One Schema per topic: Faust may rewrite the serializers of a schema it is given.
        self.snapshots = self.app.topic(
            args.topic_distribution, schema=_raw_schema(), partitions=partitions
        )
        self.flows = self.app.topic(args.topic_flow, schema=_raw_schema(), partitions=partitions)
        self.alerts = self.app.topic(args.topic_alerts, schema=_raw_schema(), partitions=partitions)
        self.deadletter = self.app.topic(
            args.topic_deadletter, schema=_raw_schema(), partitions=partitions
        )
        # bytes key and value types make Faust pick the raw codec for the changelog.
        self.state = self.app.Table(
            STATE_TABLE, default=None, partitions=partitions, key_type=bytes, value_type=bytes
        )
        # CLI/env values, then the thresholds file's defaults, markets and securities.
        self.processor = SecurityProcessor(ThresholdConfig.from_args(args))
        self.polling: PollingService | None = None if args.no_poller else PollingService(args)
        self._register()

    # -- stream processing ----------------------------------------------------------

    async def handle(self, event: faust.EventT) -> None:
        """Process one snapshot record; anything it cannot process goes to dead letters."""
        message = event.message
        try:
            snap = self.processor.decode(message.key, message.value)
        except DecodeError as exc:
            await self._dead_letter(message, "decode", str(exc))
            return
        key = snap.security.encode()
        try:
            outcome = self.processor.process(self.state.get(key), snap)
        except Exception as exc:  # a bug must not stop the worker: keep the record
            log.exception("processing %s failed", snap.security)
            await self._dead_letter(message, "process", f"{type(exc).__name__}: {exc}")
            return
        SNAPSHOTS_PROCESSED.labels(outcome.result).inc()
        if outcome.flow is not None:
            await self.flows.send(key=key, value=outcome.flow)
        if outcome.alert is not None:
            # Wait for the broker before the state records the alert as sent: a crash in
            # between re-emits it on restart under the same deterministic id.
            fut = await self.alerts.send(key=key, value=outcome.alert)
            await fut
            ALERTS.labels(outcome.direction or "unknown").inc()
            log.info("alert %s", outcome.alert.decode())
        if outcome.state is not None:
            self.state[key] = outcome.state

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
        fut = await self.deadletter.send(
            key=letter.key, value=letter.value, headers=letter.headers()
        )
        await fut

    # -- wiring ---------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app

        @app.agent(self.snapshots, name="flow-processor")
        async def flow_processor(stream: faust.StreamT) -> None:
            async for event in stream.events():
                await self.handle(event)

        if not self.args.no_poller:

            @app.task
            async def poll() -> None:
                await self.run_poller()

        @app.page("/metrics/")
        class Metrics(View):
            async def get(self, request: Request) -> Response:
                return self.bytes(exposition(), content_type="text/plain; version=0.0.4")

        polling = self.polling

        @app.page("/status/")
        class Status(View):
            async def get(self, request: Request) -> Response:
                if polling is None:
                    return self.json({"poller": False, "gateways": []})
                return self.json(
                    {
                        "poller": True,
                        "worker": polling.worker_id,
                        "stopping": polling.pool.stopped,
                        "schedule": polling.schedule,
                        "flows_read": polling.flows_read(),
                        "gateways": polling.pool.status(),
                    }
                )

        @app.page("/polling/")
        class Polling(View):
            async def get(self, request: Request) -> Response:
                if polling is None:
                    return self.json({"poller": False, "gateways": []})
                return self.json({"poller": True, **polling.pool.polling_status(time.time())})

        table = self.state

        @app.page("/flow/{security}/")
        class FlowState(View):
            @app.table_route(table=table, match_info="security")  # type: ignore[arg-type]
            async def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
                security = str(kwargs["security"])
                blob = table.get(security.encode())
                if blob is None:
                    return self.json({"security": security, "error": "no state"}, status=404)
                return self.json({"security": security, **SecurityProcessor.describe(blob)})

        STATE.lag = self._lag

    def _lag(self) -> dict[str, int]:
        consumer = self.app.consumer
        out: dict[str, int] = {}
        for tp in consumer.assignment():
            if tp.topic != self.args.topic_distribution:
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
