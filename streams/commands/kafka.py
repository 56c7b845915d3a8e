"""``capflow kafka start|stop|status``: the local single-node Kafka broker."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from streams.broker.local import LocalKafka, metadata_ready
from streams.broker.resolve import DEFAULT_KAFKA_VERSION, BrokerSetupError
from streams.commands import CommandFailed
from streams.config import add_options, extra_env


def broker_from_args(args: argparse.Namespace) -> LocalKafka:
    return LocalKafka(
        root=Path(args.data_dir) / "kafka",
        port=args.port,
        version=args.kafka_version,
    )


def add_broker_args(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ["data_dir"])
    parser.add_argument(
        "--port",
        type=int,
        default=extra_env("CAPFLOW_KAFKA_PORT", 19092, int),
        help="broker port on 127.0.0.1; the controller uses port+1 (env CAPFLOW_KAFKA_PORT, "
        "default %(default)s)",
    )
    parser.add_argument(
        "--kafka-version",
        default=extra_env("CAPFLOW_KAFKA_VERSION", DEFAULT_KAFKA_VERSION, str),
        help="org.apache.kafka:kafka_2.13 version (env CAPFLOW_KAFKA_VERSION, default %(default)s)",
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
        "Jars are cached in $CAPFLOW_CACHE_DIR (default ~/.cache/capflow); broker state, "
        "pid and log live in <data-dir>/kafka.",
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    add_broker_args(parser)
    parser.set_defaults(func=run)
