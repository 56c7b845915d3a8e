"""``capflow archive DIR``: keep the topics as a Parquet dataset, partitioned by market and day.

Follows the snapshot topic (and the flow and alert topics with --flows, --alerts) as
a consumer group and writes what they hold under DIR:

    DIR/snapshots/market=HK/trading_day=2024-06-03/<topic>-p<partition>-<first>-<last>.parquet

Plain Parquet with hive-style directories, so DuckDB, Spark, Trino and ClickHouse read
it as it is (docs/archive.md: columns, types, how to query it from object storage).
Files are written every --flush-records records or --flush-seconds seconds, whichever
comes first; each is fsynced and renamed into place before its offsets are committed.
A file's name carries its topic partition and offset range, so a run after a crash
(even kill -9) writes the ranges it had not committed again under the same names: no
row is lost and none is doubled. Records the worker would dead-letter are skipped and
reported. Progress goes to stderr; Ctrl-C or SIGTERM writes what is open, commits, and
stops. One archive process per DIR (a lock file says so); ``capflow history`` reads
DIR while it is written.

Exit status: 0 stopped by SIGTERM or at the end (--stop-at-end), 1 Kafka or the disk
failed or DIR holds something that is not part of an archive (named), 2 bad usage,
130 Ctrl-C (after writing and committing what was open).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import signal
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from streams.archive.datasets import ALERTS, FLOWS, SNAPSHOTS, Dataset
from streams.archive.follower import ArchiveOptions, follow, open_archive
from streams.archive.layout import ArchiveError
from streams.commands import CommandFailed, UsageError
from streams.kafka.preflight import check_access
from streams.settings import KafkaSettings, TopicSettings
from streams.settings.flags import add_settings, from_args


def default_group(root: Path) -> str:
    """One group per archive directory: two archives never split a topic between them."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()
    return f"capflow-archive-{digest[:12]}"


def _say(message: str) -> None:
    print(f"capflow archive: {message}", file=sys.stderr, flush=True)


def _datasets(args: argparse.Namespace) -> dict[str, Dataset]:
    """Topic -> dataset for what the flags ask for."""
    names = from_args(args, TopicSettings)
    wanted = [SNAPSHOTS]
    if args.flows:
        wanted.append(FLOWS)
    if args.alerts:
        wanted.append(ALERTS)
    topics: dict[str, Dataset] = {}
    for dataset in wanted:
        topic = getattr(names, dataset.topic_setting)
        if topic in topics:
            raise UsageError(f"{topic} is named for both {topics[topic].name} and {dataset.name}")
        topics[topic] = dataset
    return topics


def options_of(args: argparse.Namespace) -> ArchiveOptions:
    if args.flush_records < 1:
        raise UsageError(f"--flush-records must be >= 1, got {args.flush_records}")
    if not args.flush_seconds > 0:
        raise UsageError(f"--flush-seconds must be > 0, got {args.flush_seconds}")
    root = Path(args.dir)
    kafka = from_args(args, KafkaSettings)
    return ArchiveOptions(
        root=root,
        datasets=_datasets(args),
        kafka=kafka.client_kwargs,
        connect_timeout=kafka.connect_timeout,
        group=args.group or default_group(root),
        from_beginning=args.from_beginning,
        flush_records=args.flush_records,
        flush_seconds=args.flush_seconds,
        stop_at_end=args.stop_at_end,
    )


async def _missing_topics(kafka: dict[str, object], topics: list[str]) -> list[str]:
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **kafka)
    await consumer.start()
    try:
        existing = await consumer.topics()
    finally:
        await consumer.stop()
    return [t for t in topics if t not in existing]


async def _archive(args: argparse.Namespace) -> int:
    options = options_of(args)
    stop = asyncio.Event()
    interrupted: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        interrupted.append(signum)
        stop.set()

    with open_archive(options.root) as (writer, archived):
        topics = list(options.datasets)
        await check_access(options.kafka, topics, options.connect_timeout, group=options.group)
        missing = await _missing_topics(options.kafka, topics)
        if missing:
            raise CommandFailed(f"topic(s) {', '.join(missing)} do not exist (no worker yet?)")
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            names = ", ".join(f"{t} as {d.name}" for t, d in options.datasets.items())
            _say(
                f"archiving {names} to {options.root} as consumer group {options.group} "
                f"(files every {options.flush_records} records or {options.flush_seconds:g} s; "
                f"{len(archived.files)} files there already)"
            )
            totals = await follow(options, writer, archived, _say, stop)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    skipped = f", {totals.skipped} records skipped" if totals.skipped else ""
    print(f"archived {totals.rows} rows in {totals.files} file(s) to {options.root}{skipped}")
    return 130 if signal.SIGINT in interrupted else 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_archive(args))
    except ArchiveError as exc:
        raise CommandFailed(str(exc)) from exc
    except (KafkaError, OSError) as exc:  # the broker went away; a full or read-only disk
        raise CommandFailed(f"{type(exc).__name__}: {exc}") from exc
    except KeyboardInterrupt:
        return 130


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "archive",
        help="keep the snapshot (flow, alert) topics as a Parquet dataset by market and day",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dir", metavar="DIR", help="archive directory (created if missing)")
    parser.add_argument("--flows", action="store_true", help="archive the flow topic too")
    parser.add_argument("--alerts", action="store_true", help="archive the alert topic too")
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the earliest offset where neither the group nor DIR says where to "
        "continue (default: the end)",
    )
    parser.add_argument(
        "--group",
        default="",
        help="consumer group id (default: capflow-archive-<hash of DIR's absolute path>)",
    )
    parser.add_argument(
        "--flush-records",
        type=int,
        default=100_000,
        metavar="N",
        help="write files once N records are waiting (default %(default)s)",
    )
    parser.add_argument(
        "--flush-seconds",
        type=float,
        default=300.0,
        metavar="S",
        help="write files once the oldest waiting record has waited S seconds (default "
        "%(default)s: a live day gets a few hundred files, and a query opens each file of "
        "the days it reads)",
    )
    parser.add_argument(
        "--stop-at-end",
        action="store_true",
        help="archive up to the end offsets of the moment each partition is assigned, "
        "then stop (for cron jobs; the group's only member); default: follow until Ctrl-C "
        "or SIGTERM",
    )
    add_settings(parser, KafkaSettings, TopicSettings)
    parser.set_defaults(func=run)
