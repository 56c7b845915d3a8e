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
from streams.config import add_options, extra_env, group_names
from streams.settings import KafkaSettings
from streams.sinks.alertmanager import DEFAULT_GENERATOR_URL, AlertmanagerSink
from streams.sinks.chat import FORMATS, ChatSink, telegram_chat_id
from streams.sinks.console import format_alert, json_line
from streams.sinks.delivery import DEFAULT_RETRY_FLOOR, RetryPolicy
from streams.sinks.delivery_loop import DeliveryLoop
from streams.sinks.follower import FollowParams, decode_alert, follow_alerts
from streams.sinks.http import Sink
from streams.sinks.webhook import WebhookSink

log = logging.getLogger(__name__)

WEBHOOK_FORMATS = ("cloudevents", *FORMATS)


def follow_params(args: argparse.Namespace) -> FollowParams:
    """What the follower reads: the alerts topic, from where, which securities, how long."""
    return FollowParams(
        kafka=KafkaSettings.from_args(args).client_kwargs,
        topic=args.topic_alerts,
        group=args.group or None,
        from_beginning=bool(args.from_beginning),
        securities=frozenset(s.strip() for s in (args.security or []) if s.strip()),
        max_events=args.max,
        timeout=args.timeout,
        # Time for an attempt under way to get its answer when stopping or rebalancing.
        grace=args.sink_timeout + 5.0,
    )


def _env(name: str) -> str:
    return extra_env(name, "", str)


def build_sinks(args: argparse.Namespace) -> tuple[list[Sink], list[str]]:
    """The sinks the flags ask for, and their identities (for the default group name)."""
    sinks: list[Sink] = []
    identities: list[str] = []
    fmt = (args.format or "cloudevents").lower()
    if fmt not in WEBHOOK_FORMATS:
        raise UsageError(f"--format must be one of {', '.join(WEBHOOK_FORMATS)}, got {fmt!r}")
    if fmt != "cloudevents" and not args.webhook:
        raise UsageError(f"--format {fmt} needs --webhook URL (or CAPFLOW_WEBHOOK_URL)")
    try:
        if args.webhook:
            if fmt == "cloudevents":
                if not args.webhook_secret:
                    raise UsageError("--webhook needs --webhook-secret (or CAPFLOW_WEBHOOK_SECRET)")
                sinks.append(WebhookSink(args.webhook, args.webhook_secret, args.sink_timeout))
                identities.append(f"webhook|{args.webhook}")
            else:
                chat: int | str | None = None
                if fmt == "telegram":
                    if not args.telegram_chat_id:
                        raise UsageError(
                            "--format telegram needs --telegram-chat-id "
                            "(or CAPFLOW_TELEGRAM_CHAT_ID)"
                        )
                    chat = telegram_chat_id(args.telegram_chat_id)
                sinks.append(
                    ChatSink(args.webhook, fmt, telegram_chat=chat, timeout=args.sink_timeout)
                )
                identities.append(f"{fmt}|{args.webhook}|{chat or ''}")
        for url in args.alertmanager or []:
            sinks.append(
                AlertmanagerSink(url, args.cooldown, args.generator_url, args.sink_timeout)
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
    try:
        sinks, identities = build_sinks(args)
        policy = RetryPolicy(
            give_up_after=args.give_up_after,
            retry_floor=min(DEFAULT_RETRY_FLOOR, args.give_up_after),
        )
    except ValueError as exc:  # UsageError included: flags that cannot work together
        raise UsageError(str(exc)) from exc
    params = follow_params(args)
    if sinks and params.group is None:
        params.group = default_group(params.topic, identities)
    loop = DeliveryLoop(
        params,
        sinks,
        policy,
        undelivered_topic=args.topic_undelivered,
        partitions=args.topic_partitions,
        connect_timeout=args.kafka_connect_timeout,
        show=_show(args),
    )
    from aiokafka.errors import KafkaError

    try:
        return await loop.run()
    except (KafkaError, ConnectionError) as exc:
        raise CommandFailed(
            f"Kafka at {args.kafka_bootstrap}: {type(exc).__name__}: {exc}"
        ) from exc


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
            "an alert still failing after --give-up-after goes to --topic-undelivered."
        ),
    )
    add_options(parser, [*group_names("kafka"), *group_names("sinks"), "cooldown"])
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
        help="HMAC secret for X-Capflow-Signature, needed by --format cloudevents "
        "(env CAPFLOW_WEBHOOK_SECRET)",
    )
    parser.add_argument(
        "--format",
        default=_env("CAPFLOW_WEBHOOK_FORMAT") or "cloudevents",
        metavar="FMT",
        help="webhook body: cloudevents (signed, default), slack, discord or telegram "
        "(env CAPFLOW_WEBHOOK_FORMAT)",
    )
    parser.add_argument(
        "--telegram-chat-id",
        default=_env("CAPFLOW_TELEGRAM_CHAT_ID"),
        metavar="ID",
        help="chat id (number or @channel) for --format telegram; the --webhook URL is "
        "https://api.telegram.org/bot<TOKEN>/sendMessage (env CAPFLOW_TELEGRAM_CHAT_ID)",
    )
    parser.add_argument(
        "--alertmanager",
        action="append",
        default=[u.strip() for u in _env("CAPFLOW_ALERTMANAGER_URL").split(",") if u.strip()],
        metavar="URL",
        help="Alertmanager base URL, e.g. http://127.0.0.1:9093; alerts resolve after "
        "--cooldown (repeatable; env CAPFLOW_ALERTMANAGER_URL, comma-separated)",
    )
    parser.add_argument(
        "--generator-url",
        default=DEFAULT_GENERATOR_URL,
        metavar="TEMPLATE",
        help="generatorURL of Alertmanager alerts; {security} and {id} are filled in "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--sink-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds one delivery attempt may take (default %(default)s)",
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
