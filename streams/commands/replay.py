"""``capflow replay FILE``: publish recorded snapshots to the snapshot topic.

At full speed (default) or in real time (``--realtime``, paced by event time,
``--speed`` to compress it). A running worker turns them into the same flows and
alerts the live run produced, because everything downstream runs on event time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer

from streams.config import add_options, group_names, kafka_client_kwargs
from streams.pipeline.topics import TopicMismatchError, ensure_topics
from streams.recording import RecordingError, read_recording


async def replay(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.exists():
        print(f"capflow replay: {path} does not exist", file=sys.stderr)
        return 1
    snapshots = list(read_recording(path))
    if not snapshots:
        print(f"capflow replay: {path} holds no snapshots", file=sys.stderr)
        return 1
    kwargs = kafka_client_kwargs(args)
    await ensure_topics(kwargs, [args.topic_distribution], args.topic_partitions)
    producer = AIOKafkaProducer(acks="all", enable_idempotence=True, linger_ms=5, **kwargs)
    await producer.start()
    total = len(snapshots)
    started = time.monotonic()
    first_ts = snapshots[0].update_timestamp
    last_note = 0.0
    try:
        for i, msg in enumerate(snapshots, 1):
            if args.realtime:
                due = started + (msg.update_timestamp - first_ts) / args.speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await producer.send(
                args.topic_distribution, msg.SerializeToString(), key=msg.security.encode()
            )
            now = time.monotonic()
            if not args.quiet and (now - last_note > 1.0 or i == total):
                rate = i / max(now - started, 1e-9)
                print(
                    f"\rreplayed {i}/{total} ({100 * i / total:.0f}%) {rate:,.0f}/s",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
                last_note = now
        await producer.flush()
    finally:
        await producer.stop()
    if not args.quiet:
        print(file=sys.stderr)
    print(
        f"replayed {total} snapshots from {path} to {args.topic_distribution} "
        f"in {time.monotonic() - started:.1f}s"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        print("capflow replay: --speed must be > 0", file=sys.stderr)
        return 2
    try:
        return asyncio.run(replay(args))
    except (RecordingError, TopicMismatchError, ConnectionError) as exc:
        print(f"capflow replay: {exc}", file=sys.stderr)
        return 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "replay",
        help="publish recorded snapshots (JSON lines) to the snapshot topic",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", help="JSON lines of capflow.v1.DistributionSnapshot fields")
    parser.add_argument(
        "--realtime", action="store_true", help="pace by event time instead of full speed"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="with --realtime: event seconds per wall second (default 1)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    add_options(parser, group_names("kafka"))
    parser.set_defaults(func=_run)
