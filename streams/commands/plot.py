"""``capflow plot SEC``: draw one security's day from the flow and alerts topics (or files,
or the Parquet archive with ``--archive DIR``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

from streams.archive.layout import ArchiveError
from streams.commands import CommandFailed, UsageError
from streams.commands.history import add_archive_options, day_range
from streams.kafka.preflight import check_access
from streams.kafka.reading import TopicMissing, read_batches
from streams.settings import KafkaSettings, TopicSettings
from streams.settings.flags import add_settings, from_args


def read_json_lines(path: str | Path) -> list[dict[str, Any]]:
    """Objects from a JSON-lines file (blank lines skipped, bad lines reported and skipped)."""
    out: list[dict[str, Any]] = []
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                print(f"capflow plot: {path}:{lineno}: not JSON ({exc}); skipped", file=sys.stderr)
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


async def read_topic(
    kafka: dict[str, Any], topic: str, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Every decodable JSON object in ``topic``, from the beginning to the end offsets now
    (no consumer group, nothing committed)."""
    out: list[dict[str, Any]] = []
    bad = 0
    try:
        async for batch in read_batches(kafka, topic, timeout=timeout):
            for record in batch:
                try:
                    obj = orjson.loads(record.value or b"")
                except orjson.JSONDecodeError:
                    bad += 1
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
    except TopicMissing:
        print(f"capflow plot: topic {topic} does not exist", file=sys.stderr)
    except TimeoutError as exc:
        print(f"capflow plot: {exc}", file=sys.stderr)
    if bad:
        print(f"capflow plot: skipped {bad} undecodable record(s) in {topic}", file=sys.stderr)
    return out


async def _load(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    kafka = from_args(args, KafkaSettings)  # one SSL context for every client
    topics = from_args(args, TopicSettings)
    wanted = [] if args.flows_file else [topics.flow]
    if not args.alerts_file and not args.flows_file:
        wanted.append(topics.alerts)
    if wanted:
        await check_access(kafka.client_kwargs, topics=wanted, timeout=kafka.connect_timeout)
    if args.flows_file:
        flows = read_json_lines(args.flows_file)
    else:
        flows = await read_topic(kafka.client_kwargs, topics.flow, args.read_timeout)
    if args.alerts_file:
        alerts = read_json_lines(args.alerts_file)
    elif args.flows_file:
        alerts = []  # offline mode: do not reach for Kafka just for the markers
    else:
        alerts = await read_topic(kafka.client_kwargs, topics.alerts, args.read_timeout)
    return flows, alerts


def _from_archive(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The security's flow records and alerts in the archive's days (--day alone: that day)."""
    from streams.archive.datasets import ALERTS, FLOWS
    from streams.archive.query import DayRange, read_records

    if args.flows_file or args.alerts_file:
        raise UsageError("--archive replaces --flows-file and --alerts-file: give one source")
    days = day_range(args)
    if args.day and days == DayRange():
        days = DayRange(args.day, args.day)
    root = Path(args.archive)
    flows = read_records(root, FLOWS, days, [args.security])
    if not flows:
        raise CommandFailed(
            f"no flow records of {args.security} {days.describe()} in {root} "
            "(the archive has flows when `capflow archive` ran with --flows)"
        )
    return flows, read_records(root, ALERTS, days, [args.security])


def run(args: argparse.Namespace) -> int:
    from streams.offline.plotting import PlotDataError, render_day, select_day

    try:
        if args.archive:
            flows, alerts = _from_archive(args)
        else:
            if args.from_day or args.to_day:
                raise UsageError("--from and --to read the archive: add --archive DIR")
            flows, alerts = asyncio.run(_load(args))
    except ArchiveError as exc:
        raise CommandFailed(str(exc)) from exc
    except OSError as exc:  # a --flows-file or --alerts-file that cannot be read
        raise CommandFailed(str(exc)) from exc
    try:
        day_flows, day_alerts, day = select_day(flows, alerts, args.security, args.day)
        out = args.output or f"{args.security}_{day}.png"
        path = render_day(day_flows, day_alerts, out)
    except PlotDataError as exc:
        raise CommandFailed(str(exc)) from exc
    except RuntimeError as exc:  # matplotlib missing
        raise UsageError(str(exc)) from exc
    print(
        f"{path}: {args.security} {day}, {len(day_flows)} flow records, {len(day_alerts)} alert(s)"
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``capflow plot``."""
    parser = subparsers.add_parser(
        "plot",
        help="PNG of one security's day: large net, R_W, threshold band, alerts",
        description="Read capflow.flow.v1 and capflow.alerts.v1 from the beginning (or "
        "JSON-lines files, or the Parquet archive of `capflow archive --flows --alerts`) and "
        "draw one security's trading day.",
    )
    parser.add_argument("security", help="security, e.g. HK.00700")
    parser.add_argument(
        "--day",
        default=None,
        metavar="YYYY-MM-DD",
        help="trading day (default: the latest day seen)",
    )
    parser.add_argument(
        "-o", "--output", default=None, metavar="PNG", help="output file (default: SEC_DAY.png)"
    )
    parser.add_argument(
        "--flows-file",
        default=None,
        metavar="JSONL",
        help="read flow records from this JSON-lines file instead of Kafka",
    )
    parser.add_argument(
        "--alerts-file",
        default=None,
        metavar="JSONL",
        help="read alerts from this JSON-lines file instead of Kafka",
    )
    add_archive_options(parser, required=False)
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="give up reading a topic after S seconds",
    )
    add_settings(parser, KafkaSettings, TopicSettings)
    parser.set_defaults(func=run)
