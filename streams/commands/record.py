"""``capflow record FILE``: write the snapshot topic (from the beginning) as JSON lines.

Stops when it has caught up with the end of every partition, or after ``--follow``
keeps it running until Ctrl-C. The file is what ``capflow replay`` reads.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from streams.commands import CommandFailed
from streams.kafka_access import check_access
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.recording import to_json_line
from streams.settings import KafkaSettings, TopicSettings
from streams.settings.flags import add_settings, from_args
from streams.topic_partitions import assign_whole_topic


async def record(args: argparse.Namespace) -> int:
    settings = from_args(args, KafkaSettings)
    topic = from_args(args, TopicSettings).distribution
    kafka = settings.client_kwargs
    await check_access(kafka, topics=[topic], timeout=settings.connect_timeout)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **kafka)
    await consumer.start()
    written = skipped = 0
    try:
        tps = await assign_whole_topic(consumer, topic)
        if not tps:
            raise CommandFailed(f"topic {topic} does not exist")
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        with open(Path(args.file), "wb") as out:
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for rec in records:
                        try:
                            msg = DistributionSnapshot.FromString(rec.value or b"")
                        except Exception:
                            skipped += 1
                            continue
                        if args.security and msg.security not in args.security:
                            continue
                        out.write(to_json_line(msg))
                        written += 1
                if not args.follow:
                    positions = [await consumer.position(tp) for tp in tps]
                    if all(pos >= end[tp] for pos, tp in zip(positions, tps, strict=True)):
                        break
    finally:
        await consumer.stop()
    note = f" ({skipped} undecodable records skipped)" if skipped else ""
    print(f"recorded {written} snapshots to {args.file}{note}")
    return 0


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
        help="write the snapshot topic to a JSON-lines file for replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", help="output file (JSON lines)")
    parser.add_argument("--security", action="append", help="only this security (repeatable)")
    parser.add_argument("--follow", action="store_true", help="keep recording until Ctrl-C")
    add_settings(parser, KafkaSettings, TopicSettings)
    parser.set_defaults(func=run)
