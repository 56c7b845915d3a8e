"""``capflow alerts``: follow the alerts topic, print readable lines, optionally POST them.

Alert ids are deterministic, so a restarted detector can re-emit an alert; the
follower drops repeats of an id it already handled in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.config import add_options, group_names, kafka_client_kwargs
from streams.kafka_access import check_access
from streams.sinks.console import format_alert, json_line
from streams.sinks.webhook import WebhookError, WebhookSink

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[Any] | Any]
DEDUPE_MEMORY = 100_000  # ids remembered; bounds memory on very long runs


@dataclass
class FollowParams:
    """What ``follow_alerts`` needs; built from CLI args or directly by callers and tests."""

    kafka: dict[str, Any] = field(default_factory=lambda: {"bootstrap_servers": "127.0.0.1:19092"})
    topic: str = "capflow.alerts.v1"
    group: str | None = None
    from_beginning: bool = False
    securities: frozenset[str] = frozenset()
    max_events: int | None = None
    timeout: float | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FollowParams:
        return cls(
            kafka=kafka_client_kwargs(args),
            topic=args.topic_alerts,
            group=args.group or None,
            from_beginning=bool(args.from_beginning),
            securities=frozenset(s.strip() for s in (args.security or []) if s.strip()),
            max_events=args.max,
            timeout=args.timeout,
        )


class _Seen:
    """Insertion-ordered set with a size cap: dedupe by id without unbounded growth."""

    def __init__(self, cap: int = DEDUPE_MEMORY) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._cap = cap

    def add(self, key: str) -> bool:
        """True if ``key`` is new."""
        if key in self._ids:
            return False
        self._ids[key] = None
        if len(self._ids) > self._cap:
            self._ids.popitem(last=False)
        return True


def decode_alert(value: bytes | None) -> dict[str, Any]:
    """Parse one record value into an alert event dict; ValueError explains what is wrong."""
    if value is None:
        raise ValueError("empty record value (tombstone)")
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise ValueError(f"expected a JSON object, got {type(event).__name__}")
    if not event.get("id"):
        raise ValueError("alert has no 'id'")
    if not isinstance(event.get("data"), dict):
        raise ValueError("alert has no 'data' object")
    return event


def _security(event: dict[str, Any], key: bytes | None) -> str:
    data = event.get("data") or {}
    sec = data.get("security") or event.get("subject")
    if not sec and key:
        sec = key.decode("utf-8", "replace")
    return str(sec or "")


async def follow_alerts(
    params: FollowParams | argparse.Namespace,
    on_event: EventHandler,
    *,
    warn: Callable[[str], None] | None = None,
) -> int:
    """Consume alerts and call ``on_event`` once per new alert id; returns how many.

    Stops after ``max_events`` alerts or ``timeout`` seconds (if set), else runs until
    cancelled. Records that do not decode are reported through ``warn`` and skipped.
    """
    from aiokafka import AIOKafkaConsumer

    if isinstance(params, argparse.Namespace):
        params = FollowParams.from_args(params)
    warn = warn or _warn_stderr
    consumer = AIOKafkaConsumer(
        params.topic,
        group_id=params.group,
        enable_auto_commit=params.group is not None,
        auto_offset_reset="earliest" if params.from_beginning else "latest",
        **params.kafka,
    )
    deadline = None if params.timeout is None else time.monotonic() + params.timeout
    seen = _Seen()
    delivered = 0
    await consumer.start()
    try:
        while params.max_events is None or delivered < params.max_events:
            wait_ms = 1000
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                wait_ms = max(1, min(wait_ms, int(remaining * 1000)))
            batches = await consumer.getmany(timeout_ms=wait_ms)
            for tp, records in batches.items():
                for record in records:
                    where = f"{tp.topic}[{tp.partition}]@{record.offset}"
                    try:
                        event = decode_alert(record.value)
                    except ValueError as exc:
                        warn(f"capflow alerts: skipping undecodable record {where}: {exc}")
                        continue
                    if params.securities and _security(event, record.key) not in params.securities:
                        continue
                    if not seen.add(str(event["id"])):
                        log.debug("duplicate alert %s at %s dropped", event["id"], where)
                        continue
                    result = on_event(event)
                    if inspect.isawaitable(result):
                        await result
                    delivered += 1
                    if params.max_events is not None and delivered >= params.max_events:
                        return delivered
    finally:
        await consumer.stop()
    return delivered


def _warn_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _run(args: argparse.Namespace) -> int:
    webhook: WebhookSink | None = None
    if args.webhook:
        if not args.webhook_secret:
            print(
                "capflow alerts: --webhook needs --webhook-secret (or CAPFLOW_WEBHOOK_SECRET)",
                file=sys.stderr,
            )
            return 2
        webhook = WebhookSink(args.webhook, args.webhook_secret)
    failures = 0

    async def handle(event: dict[str, Any]) -> None:
        nonlocal failures
        if args.json:
            print(json_line(event), flush=True)
        elif not args.quiet:
            print(format_alert(event), flush=True)
        if webhook is not None:
            try:
                await webhook.send(event)
            except WebhookError as exc:
                failures += 1
                _warn_stderr(f"capflow alerts: {exc}")

    try:
        await check_access(
            kafka_client_kwargs(args),
            [args.topic_alerts],
            args.kafka_connect_timeout,
            group=args.group,
        )
        await follow_alerts(FollowParams.from_args(args), handle)
    finally:
        if webhook is not None:
            await webhook.close()
    return 1 if failures else 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``capflow alerts``."""
    parser = subparsers.add_parser(
        "alerts",
        help="follow the alerts topic, readable (or JSON), optionally POST to a webhook",
        description="Follow capflow.alerts.v1. Duplicate alert ids are dropped within a run.",
    )
    add_options(parser, [*group_names("kafka")])
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the earliest offset instead of the latest",
    )
    parser.add_argument(
        "--group", default="", help="consumer group id (default: none, offsets are not committed)"
    )
    parser.add_argument(
        "--security",
        action="append",
        metavar="SEC",
        help="only this security, e.g. HK.00700 (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print each alert as one JSON line")
    parser.add_argument(
        "--quiet", action="store_true", help="print nothing (e.g. with --webhook only)"
    )
    parser.add_argument("--max", type=int, default=None, metavar="N", help="stop after N alerts")
    parser.add_argument(
        "--timeout", type=float, default=None, metavar="S", help="stop after S seconds"
    )
    parser.add_argument(
        "--webhook",
        default=_env("CAPFLOW_WEBHOOK_URL"),
        metavar="URL",
        help="POST each alert here (env CAPFLOW_WEBHOOK_URL)",
    )
    parser.add_argument(
        "--webhook-secret",
        default=_env("CAPFLOW_WEBHOOK_SECRET"),
        metavar="S",
        help="HMAC secret for X-Capflow-Signature (env CAPFLOW_WEBHOOK_SECRET)",
    )
    parser.set_defaults(func=run)


def _env(name: str) -> str:
    return os.environ.get(name, "")


__all__ = ["FollowParams", "decode_alert", "follow_alerts", "register", "run"]
