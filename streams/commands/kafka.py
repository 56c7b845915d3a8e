"""``capflow kafka start|stop|status``: the local single-node Kafka broker."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from streams.broker.local import LocalKafka, metadata_ready
from streams.broker.resolve import BrokerSetupError
from streams.commands import CommandFailed
from streams.settings import LocalKafkaSettings, WorkerSettings
from streams.settings.flags import add_settings, from_args


def add_broker_settings(parser: argparse.ArgumentParser) -> None:
    """The local broker's settings and the data directory it lives in (``<data-dir>/kafka``)."""
    add_settings(parser, WorkerSettings, only=["data_dir"])
    add_settings(parser, LocalKafkaSettings)


def broker_from_args(args: argparse.Namespace) -> LocalKafka:
    local = from_args(args, LocalKafkaSettings)
    return LocalKafka(
        root=Path(from_args(args, WorkerSettings).data_dir) / "kafka",
        port=local.port,
        version=local.version,
        cache_dir=local.cache_dir,
    )


def run(args: argparse.Namespace) -> int:
    broker = broker_from_args(args)
    try:
        if args.action == "start":
            info = broker.start()
            print(
                f"kafka {info.version} running: bootstrap {info.bootstrap} pid {info.pid} "
                f"log {info.log}"
            )
            return 0
        if args.action == "stop":
            stopped = broker.stop()
            print("kafka stopped" if stopped else "kafka was not running")
            return 0
        found = broker.info()
        if found is None:
            raise CommandFailed(f"status: not running (state in {broker.root})")
        info = found
        where = f"kafka {info.version} pid {info.pid} bootstrap {info.bootstrap}"
        if not asyncio.run(metadata_ready(info.bootstrap)):
            raise CommandFailed(
                f"status: {where}: process alive, NOT answering metadata; log {info.log}"
            )
        print(f"{where}: answering metadata; log {info.log}")
        return 0
    except BrokerSetupError as exc:
        raise CommandFailed(f"{args.action}: {exc}") from exc


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "kafka",
        help="local single-node Apache Kafka (KRaft), no Docker needed",
        description="Run a real Apache Kafka broker (KRaft, one node) from Maven Central jars. "
        "Jars are cached in --cache-dir (CAPFLOW_CACHE_DIR); broker state, "
        "pid and log live in <data-dir>/kafka.",
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    add_broker_settings(parser)
    parser.set_defaults(func=run)
