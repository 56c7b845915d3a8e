"""``capflow record FILE``: write the snapshot topic (from the beginning) as JSON lines.

The capital-flow topic (minute history) goes into the same file, a series a line.
Stops when it has caught up with the end of every partition, or after ``--follow``
keeps it running until Ctrl-C. The file is what ``capflow replay`` and
``capflow backtest`` read.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from streams.commands import CommandFailed
from streams.kafka.preflight import check_access
from streams.kafka.reading import TopicMissing, read_batches
from streams.offline.recording import Record, to_json_line
from streams.pb.capflow.v1.capital_flow_pb2 import CapitalFlowSeries
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.settings import KafkaSettings, TopicSettings
from streams.settings.flags import add_settings, from_args


async def record(args: argparse.Namespace) -> int:
    settings, topics = from_args(args, KafkaSettings), from_args(args, TopicSettings)
    kafka = settings.client_kwargs
    await check_access(kafka, topics=[topics.distribution], timeout=settings.connect_timeout)
    await _require(kafka, topics.distribution)  # before the file is made
    counts = {"snapshots": 0, "series": 0, "skipped": 0}
    with open(Path(args.file), "wb") as out:

        def write(msg: Record, kind: str) -> None:
            if args.security and msg.security not in args.security:
                return
            out.write(to_json_line(msg))
            counts[kind] += 1

        # Both topics at once: the flow processor puts them in order by itself.
        await asyncio.gather(
            _copy(kafka, topics.distribution, DistributionSnapshot, "snapshots", write, counts,
                  args.follow, required=True),
            _copy(kafka, topics.capitalflow, CapitalFlowSeries, "series", write, counts,
                  args.follow, required=False),
        )  # fmt: skip
    notes = []
    if counts["series"]:
        notes.append(f"and {counts['series']} capital-flow series")
    if counts["skipped"]:
        notes.append(f"({counts['skipped']} undecodable records skipped)")
    note = "".join(" " + n for n in notes)
    print(f"recorded {counts['snapshots']} snapshots{note} to {args.file}")
    return 0


async def _require(kafka: dict[str, Any], topic: str) -> None:
    """CommandFailed unless ``topic`` exists (a group-less look at the cluster's topics)."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **kafka)
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            raise CommandFailed(f"topic {topic} does not exist")
    finally:
        await consumer.stop()


async def _copy(
    kafka: dict[str, Any],
    topic: str,
    kind: type[DistributionSnapshot] | type[CapitalFlowSeries],
    name: str,
    write: Callable[[Record, str], None],
    counts: dict[str, int],
    follow: bool,
    *,
    required: bool,
) -> None:
    """Every record of ``topic`` from the beginning to its end (or on, with ``follow``)."""
    try:
        async for batch in read_batches(kafka, topic, follow=follow, timeout=float("inf")):
            for rec in batch:
                try:
                    msg = kind.FromString(rec.value or b"")
                except Exception:
                    counts["skipped"] += 1
                    continue
                write(msg, name)
    except TopicMissing:
        if required:
            raise CommandFailed(f"topic {topic} does not exist") from None
        # no minute history was ever published


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(record(args))
    except KafkaError as exc:  # the broker went away while recording
        raise CommandFailed(f"Kafka failed: {exc}") from exc
    except KeyboardInterrupt:
        return 130


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "record",
        help="write the snapshot topic (and minute history) to a JSON-lines file for replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", help="output file (JSON lines)")
    parser.add_argument("--security", action="append", help="only this security (repeatable)")
    parser.add_argument("--follow", action="store_true", help="keep recording until Ctrl-C")
    add_settings(parser, KafkaSettings, TopicSettings)
    parser.set_defaults(func=run)
