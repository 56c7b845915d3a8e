"""``capflow replay FILE``: publish recorded snapshots to the snapshot topic.

At full speed (default) or in real time (``--realtime``, paced by event time,
``--speed`` to compress it). A running worker turns them into the same flows and
alerts the live run produced, because everything downstream runs on event time.
Capital-flow series in the file (minute history, ``capflow record`` writes them) go
to the capital-flow topic. A file without any keeps the snapshots' names of series
out of what it publishes (``capital_flow_ref_ms`` 0): no worker would ever see
those series, and the snapshots would wait for them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.commands import CommandFailed, UsageError
from streams.kafka.preflight import check_access
from streams.kafka.topics import TopicMismatchError, ensure_topics
from streams.offline.recording import Record, RecordingError, read_recording
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.settings import KafkaSettings, TopicSettings
from streams.settings.flags import add_settings, from_args

MAX_PENDING = 10_000  # sends in flight before replay waits for the oldest


class ReplayFailed(RuntimeError):
    """The broker stopped confirming writes; ``confirmed`` records are known written."""

    def __init__(
        self, confirmed: int, total: int, cause: BaseException, what: str = "snapshots"
    ) -> None:
        name, detail = type(cause).__name__, str(cause).strip()
        reason = f"{name}: {detail}" if detail and detail != name else name
        super().__init__(
            f"Kafka failed after {confirmed} of {total} {what} were confirmed written ({reason})"
        )
        self.confirmed = confirmed


class SendTracker:
    """Counts the sends the broker confirmed and retrieves every failure exactly once.

    Each future gets a done callback, so none is left with an exception nobody read
    (which asyncio would log once per record), whatever path the replay takes.
    """

    def __init__(self) -> None:
        self.confirmed = 0
        self.failed = 0
        self.first_error: BaseException | None = None
        self._pending: deque[asyncio.Future[Any]] = deque()

    def _done(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            self.failed += 1
            return
        exc = fut.exception()
        if exc is None:
            self.confirmed += 1
        else:
            self.failed += 1
            if self.first_error is None:
                self.first_error = exc

    def add(self, fut: asyncio.Future[Any]) -> None:
        fut.add_done_callback(self._done)
        self._pending.append(fut)

    async def drain(self, keep: int = 0) -> None:
        """Wait for the oldest sends until at most ``keep`` are in flight; raise on a failure."""
        while len(self._pending) > keep:
            fut = self._pending.popleft()
            await asyncio.wait([fut])
            if self.first_error is not None:
                raise self.first_error

    def unfinished(self) -> list[asyncio.Future[Any]]:
        return [f for f in self._pending if not f.done()]


async def _stop(producer: AIOKafkaProducer, tracker: SendTracker, timeout: float) -> None:
    """Stop the producer; sends it could not finish by then count as not written."""
    with contextlib.suppress(TimeoutError, KafkaError):
        await asyncio.wait_for(producer.stop(), timeout)
    for fut in tracker.unfinished():
        fut.cancel()
    await asyncio.sleep(0)  # let the done callbacks of cancelled sends run


async def replay(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.exists():
        raise CommandFailed(f"{path} does not exist")
    records = list(read_recording(path))
    snapshots = sum(isinstance(r, DistributionSnapshot) for r in records)
    if not snapshots:
        raise CommandFailed(f"{path} holds no snapshots")
    series = len(records) - snapshots
    if not series:
        for msg in records:
            msg.ClearField("capital_flow_ref_ms")
    kafka, topics = from_args(args, KafkaSettings), from_args(args, TopicSettings)
    kwargs = kafka.client_kwargs
    names = [topics.distribution, *([topics.capitalflow] if series else [])]
    await check_access(kwargs, topics=names, timeout=kafka.connect_timeout)
    await ensure_topics(kwargs, names, topics.partitions)
    # The outcome is reported by one line of ours; aiokafka's per-attempt connection
    # errors during an outage would only repeat it, many times a second.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    producer = AIOKafkaProducer(
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=int(args.send_timeout * 1000),
        **kwargs,
    )
    await producer.start()
    total = len(records)
    tracker = SendTracker()
    started = time.monotonic()
    first_ts = event_time(records[0])
    last_note = 0.0
    failure: BaseException | None = None
    try:
        for i, msg in enumerate(records, 1):
            if args.realtime:
                due = started + (event_time(msg) - first_ts) / args.speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            topic = (
                topics.distribution if isinstance(msg, DistributionSnapshot) else topics.capitalflow
            )
            tracker.add(
                await producer.send(topic, msg.SerializeToString(), key=msg.security.encode())
            )
            await tracker.drain(keep=MAX_PENDING)
            now = time.monotonic()
            if not args.quiet and (now - last_note > 1.0 or i == total):
                rate = i / max(now - started, 1e-9)
                print(
                    f"\rsent {i}/{total} ({100 * i / total:.0f}%) {rate:,.0f}/s, "
                    f"{tracker.confirmed} confirmed",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
                last_note = now
        await tracker.drain()
    except KafkaError as exc:
        failure = exc
    finally:
        await _stop(producer, tracker, args.send_timeout + 5)
    if not args.quiet:
        print(file=sys.stderr)
    if failure is not None or tracker.confirmed < total:
        cause = failure or tracker.first_error or RuntimeError("sends were not confirmed")
        what = "records (snapshots and capital-flow series)" if series else "snapshots"
        raise ReplayFailed(tracker.confirmed, total, cause, what)
    with_series = f" and {series} capital-flow series to {topics.capitalflow}" if series else ""
    print(
        f"replayed {snapshots} snapshots from {path} to {topics.distribution}{with_series}: "
        f"{tracker.confirmed} confirmed written in {time.monotonic() - started:.1f}s"
    )
    return 0


def event_time(msg: Record) -> float:
    """When a record happened: a snapshot's updateTimestamp, a series' lastValidTime."""
    if isinstance(msg, DistributionSnapshot):
        return msg.update_timestamp
    return msg.last_valid_timestamp or msg.received_at_ms / 1000


def run(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        raise UsageError("--speed must be > 0")
    if args.send_timeout <= 0:
        raise UsageError("--send-timeout must be > 0")
    try:
        return asyncio.run(replay(args))
    except (RecordingError, TopicMismatchError, ConnectionError, ReplayFailed) as exc:
        raise CommandFailed(str(exc)) from exc


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "replay",
        help="publish recorded snapshots (JSON lines) to the snapshot topic",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file",
        help="JSON lines of capflow.v1.DistributionSnapshot fields (and capital-flow series)",
    )
    parser.add_argument(
        "--realtime", action="store_true", help="pace by event time instead of full speed"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="with --realtime: event seconds per wall second (default 1)",
    )
    parser.add_argument(
        "--send-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="give up when the broker has not confirmed a send for S seconds (default 30)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    add_settings(parser, KafkaSettings, TopicSettings)
    parser.set_defaults(func=run)
