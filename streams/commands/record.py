"""``capflow record FILE``: write the snapshot topic (from the beginning) as JSON lines.

Stops when it has caught up with the end of every partition, or after ``--follow``
keeps it running until Ctrl-C. The file is what ``capflow replay`` reads.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams.config import add_options, group_names, kafka_client_kwargs
from streams.kafka_access import check_access
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.recording import to_json_line


async def record(args: argparse.Namespace) -> int:
    kafka = kafka_client_kwargs(args)
    await check_access(kafka, topics=[args.topic_distribution], timeout=args.kafka_connect_timeout)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **kafka)
    await consumer.start()
    written = skipped = 0
    try:
        # A consumer without a subscription has no metadata of the topic yet: ask for it.
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(args.topic_distribution)
        if not partitions:
            print(
                f"capflow record: topic {args.topic_distribution} does not exist", file=sys.stderr
            )
            return 1
        tps = [TopicPartition(args.topic_distribution, p) for p in sorted(partitions)]
        consumer.assign(tps)
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


def _run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(record(args))
    except KafkaError as exc:  # the broker went away while recording
        print(f"capflow record: Kafka failed: {exc}", file=sys.stderr)
        return 1
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
    add_options(parser, group_names("kafka"))
    parser.set_defaults(func=_run)
