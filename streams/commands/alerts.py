"""``capflow alerts``: follow the alerts topic, print readable lines, deliver them to sinks.

Sinks (a signed webhook, Slack/Discord/Telegram webhooks, Alertmanager) get every
alert at least once: the follower reads as a consumer group (a default one derived
from the topic and the sinks, unless ``--group`` names one) and commits an alert's
offset only after every sink has it, or after the undelivered topic has it with
the reason. Alert ids are deterministic, so receivers deduplicate re-deliveries.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from streams.commands import CommandFailed, UsageError
from streams.settings import FlowSettings, KafkaSettings, SinkSettings, TopicSettings
from streams.settings.flags import add_settings, from_args
from streams.sinks.alertmanager import AlertmanagerSink
from streams.sinks.chat import ChatSink, telegram_chat_id
from streams.sinks.console import format_alert, json_line
from streams.sinks.delivery import DEFAULT_RETRY_FLOOR, RetryPolicy
from streams.sinks.delivery_loop import DeliveryLoop
from streams.sinks.follower import FollowParams, decode_alert, follow_alerts
from streams.sinks.http import Sink
from streams.sinks.webhook import WebhookSink

log = logging.getLogger(__name__)


def follow_params(
    args: argparse.Namespace, kafka: KafkaSettings, sinks: SinkSettings
) -> FollowParams:
    """What the follower reads: the alerts topic, from where, which securities, how long."""
    return FollowParams(
        kafka=kafka.client_kwargs,
        topic=from_args(args, TopicSettings).alerts,
        group=args.group or None,
        from_beginning=bool(args.from_beginning),
        securities=frozenset(s.strip() for s in (args.security or []) if s.strip()),
        max_events=args.max,
        timeout=args.timeout,
        # Time for an attempt under way to get its answer when stopping or rebalancing.
        grace=sinks.sink_timeout + 5.0,
    )


def build_sinks(settings: SinkSettings, cooldown: float) -> tuple[list[Sink], list[str]]:
    """The sinks the settings ask for, and their identities (for the default group name)."""
    sinks: list[Sink] = []
    identities: list[str] = []
    fmt, url, timeout = settings.webhook_format, settings.webhook_url, settings.sink_timeout
    if fmt != "cloudevents" and not url:
        raise UsageError(f"--format {fmt} needs --webhook URL (or CAPFLOW_WEBHOOK_URL)")
    try:
        if url:
            if fmt == "cloudevents":
                if not settings.webhook_secret:
                    raise UsageError("--webhook needs --webhook-secret (or CAPFLOW_WEBHOOK_SECRET)")
                sinks.append(WebhookSink(url, settings.webhook_secret, timeout))
                identities.append(f"webhook|{url}")
            else:
                chat: int | str | None = None
                if fmt == "telegram":
                    if not settings.telegram_chat_id:
                        raise UsageError(
                            "--format telegram needs --telegram-chat-id "
                            "(or CAPFLOW_TELEGRAM_CHAT_ID)"
                        )
                    chat = telegram_chat_id(settings.telegram_chat_id)
                sinks.append(ChatSink(url, fmt, telegram_chat=chat, timeout=timeout))
                identities.append(f"{fmt}|{url}|{chat or ''}")
        for url in settings.alertmanager_url:
            sinks.append(
                AlertmanagerSink(
                    url,
                    cooldown,
                    settings.generator_url,
                    timeout,
                    late_active=settings.late_alert_active,
                )
            )
            identities.append(f"alertmanager|{url}")
    except UsageError:
        raise
    except (ValueError, KeyError, IndexError) as exc:
        raise UsageError(str(exc)) from None
    return sinks, identities


def default_group(topic: str, identities: list[str]) -> str:
    """A stable group per (topic, sinks): each integration gets every alert once."""
    digest = hashlib.sha256("\n".join([topic, *sorted(identities)]).encode()).hexdigest()
    return f"capflow-alerts-{digest[:12]}"


def _show(args: argparse.Namespace) -> Callable[[dict[str, Any]], None] | None:
    """How each alert is printed: readable, one JSON line, or not at all (--quiet)."""
    if args.json:
        return lambda event: print(json_line(event), flush=True)
    if args.quiet:
        return None
    return lambda event: print(format_alert(event), flush=True)


async def _run(args: argparse.Namespace) -> int:
    kafka, settings = from_args(args, KafkaSettings), from_args(args, SinkSettings)
    try:
        sinks, identities = build_sinks(settings, from_args(args, FlowSettings).cooldown)
        policy = RetryPolicy(
            give_up_after=settings.give_up_after,
            retry_floor=min(DEFAULT_RETRY_FLOOR, settings.give_up_after),
        )
    except ValueError as exc:  # UsageError included: flags that cannot work together
        raise UsageError(str(exc)) from exc
    params = follow_params(args, kafka, settings)
    if sinks and params.group is None:
        params.group = default_group(params.topic, identities)
    loop = DeliveryLoop(
        params,
        sinks,
        policy,
        undelivered_topic=settings.topic_undelivered,
        partitions=from_args(args, TopicSettings).partitions,
        connect_timeout=kafka.connect_timeout,
        show=_show(args),
    )
    from aiokafka.errors import KafkaError

    try:
        return await loop.run()
    except (KafkaError, ConnectionError) as exc:
        raise CommandFailed(f"Kafka at {kafka.bootstrap}: {type(exc).__name__}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``capflow alerts``."""
    parser = subparsers.add_parser(
        "alerts",
        help="follow the alerts topic, readable (or JSON); deliver to webhooks, chat, Alertmanager",
        description=(
            "Follow capflow.alerts.v1. Duplicate alert ids are dropped within a run. With a "
            "sink (--webhook, --alertmanager) every alert is delivered at least once: offsets "
            "are committed only after delivery, failures are retried with capped backoff, and "
            "an alert a sink rejects for good (a 4xx answer other than 408 and 429, or an "
            "alert the sink cannot express) or that still fails after --give-up-after goes "
            "to --topic-undelivered, as do records that are not alerts. Exit status: 1 if "
            "any alert was not delivered to a sink (the run still goes on until --max, "
            "--timeout or a signal stops it) or Kafka cannot be used, 2 for bad usage, "
            "130 after Ctrl-C, else 0."
        ),
    )
    add_settings(parser, KafkaSettings, TopicSettings, SinkSettings)
    add_settings(parser, FlowSettings, only=["cooldown"])  # Alertmanager's endsAt
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the earliest offset when the group has none committed (default: latest)",
    )
    parser.add_argument(
        "--group",
        default="",
        help="consumer group id; offsets are committed after each alert is handled "
        "(default with a sink: derived from the topic and the sinks; without: none)",
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
    parser.add_argument(
        "--max", type=int, default=None, metavar="N", help="stop after N alerts handled"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, metavar="S", help="stop after S seconds"
    )
    parser.set_defaults(func=run)


__all__ = [
    "FollowParams",
    "build_sinks",
    "decode_alert",
    "default_group",
    "follow_alerts",
    "register",
    "run",
]
