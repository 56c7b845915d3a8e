"""Read the alerts topic and hand each new alert to a handler, committing only after it.

With a consumer group, each partition is worked by its own task, in offset order,
and its offset is committed only after the handler returned for that record, so a
crash (even kill -9) re-delivers every alert whose handling had not finished. A
partition being worked is paused, so the main loop keeps polling (the group keeps
its membership during long retries) without piling up records. When the group has
no committed offset yet, the starting position is committed as soon as the
partition is assigned: an alert produced while the follower is down is then read
when it starts again, instead of being skipped by "latest".

Alert ids are deterministic, so a restarted detector can re-emit an alert; the
follower hands each id to the handler once per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[Any] | Any]
RecordHandler = Callable[[dict[str, Any], Any], Awaitable[Any]]
BadRecordHandler = Callable[[Any, str], Awaitable[Any]]
DEDUPE_MEMORY = 100_000  # ids remembered; bounds memory on very long runs


@dataclass
class FollowParams:
    """What ``follow_alerts`` needs; built by ``capflow alerts`` from its options, or directly."""

    kafka: dict[str, Any] = field(default_factory=lambda: {"bootstrap_servers": "127.0.0.1:19092"})
    topic: str = "capflow.alerts.v1"
    group: str | None = None
    from_beginning: bool = False
    securities: frozenset[str] = frozenset()
    max_events: int | None = None
    timeout: float | None = None


class _Seen:
    """Insertion-ordered set with a size cap: dedupe by id without unbounded growth."""

    def __init__(self, cap: int = DEDUPE_MEMORY) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._cap = cap

    def __contains__(self, key: str) -> bool:
        return key in self._ids

    def add(self, key: str) -> bool:
        """True if ``key`` is new."""
        if key in self._ids:
            return False
        self._ids[key] = None
        if len(self._ids) > self._cap:
            self._ids.popitem(last=False)
        return True


def decode_alert(value: bytes | None) -> dict[str, Any]:
    """Parse one record value into an alert event dict; ValueError explains what is wrong."""
    if value is None:
        raise ValueError("empty record value (tombstone)")
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise ValueError(f"expected a JSON object, got {type(event).__name__}")
    if not event.get("id"):
        raise ValueError("alert has no 'id'")
    if not isinstance(event.get("data"), dict):
        raise ValueError("alert has no 'data' object")
    return event


def record_security(event: dict[str, Any], key: bytes | None) -> str:
    """The security an alert is about: its data, its subject, else the record key."""
    data = event.get("data") or {}
    sec = data.get("security") or event.get("subject")
    if not sec and key:
        sec = key.decode("utf-8", "replace")
    return str(sec or "")


def _warn_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Follower:
    """The state of one follow run: workers per partition, anchoring, counting."""

    def __init__(
        self,
        consumer: Any,
        params: FollowParams,
        on_record: RecordHandler,
        on_bad: BadRecordHandler | None,
        warn: Callable[[str], None],
        on_ready: Callable[[list[Any]], None] | None,
    ) -> None:
        self.consumer = consumer
        self.params = params
        self.on_record = on_record
        self.on_bad = on_bad
        self.warn = warn
        self.on_ready = on_ready
        self.commits = params.group is not None
        self.workers: dict[Any, asyncio.Task[None]] = {}
        self.to_anchor: set[Any] = set()
        self.seen = _Seen()
        self.handled = 0
        self.ready = False
        self.finished = asyncio.Event()

    # -- rebalance listener callbacks -------------------------------------------------

    async def revoke(self, partitions: set[Any]) -> None:
        """Stop work on partitions taken away; their uncommitted alerts go to the new owner."""
        tasks = [self.workers.pop(tp) for tp in partitions if tp in self.workers]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.to_anchor -= set(partitions)

    def assign(self, partitions: set[Any]) -> None:
        self.to_anchor |= set(partitions)

    # -- main loop ----------------------------------------------------------------------

    def limit_reached(self) -> bool:
        return self.params.max_events is not None and self.handled >= self.params.max_events

    async def run(self) -> int:
        deadline = None if self.params.timeout is None else time.monotonic() + self.params.timeout
        try:
            while not self.limit_reached():
                wait_ms = 1000
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    wait_ms = max(1, min(wait_ms, int(remaining * 1000)))
                batches = await self.consumer.getmany(timeout_ms=wait_ms)
                if self.commits:
                    await self._anchor(batches)
                else:
                    self.to_anchor.clear()
                self._note_ready()
                for tp, records in batches.items():
                    if records:
                        self.consumer.pause(tp)
                        self.workers[tp] = asyncio.create_task(self._drain(tp, records))
                self._reap()
                if self.finished.is_set():
                    break
        finally:
            await self.revoke(set(self.workers))
        return self.handled

    def _note_ready(self) -> None:
        if self.ready:
            return
        assignment = self.consumer.assignment()
        if assignment and not self.to_anchor:
            self.ready = True
            if self.on_ready is not None:
                self.on_ready(sorted(assignment))

    def _reap(self) -> None:
        for tp, task in list(self.workers.items()):
            if not task.done():
                continue
            del self.workers[tp]
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is not None:
                raise exc
            if tp in self.consumer.assignment():
                self.consumer.resume(tp)

    async def _anchor(self, batches: dict[Any, list[Any]]) -> None:
        """Commit the start position of partitions the group has never committed."""
        pending = self.to_anchor & self.consumer.assignment()
        if not pending:
            return
        from aiokafka.errors import CommitFailedError, IllegalStateError

        offsets: dict[Any, int] = {}
        try:
            for tp in sorted(pending):
                if await self.consumer.committed(tp) is not None:
                    continue
                records = batches.get(tp)
                offsets[tp] = records[0].offset if records else await self.consumer.position(tp)
            if offsets:
                await self.consumer.commit(offsets)
                log.info("anchored new consumer group positions %s", offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # Taken away meanwhile, or the group is rebalancing: try again on the next turn
            # (or the next assignment); none of these records has been handled yet.
            log.warning("could not record the start of %s yet (%s)", sorted(pending), exc)
            for tp in pending & set(batches):
                records = batches.pop(tp)
                if records and tp in self.consumer.assignment():
                    self.consumer.seek(tp, records[0].offset)  # read them again next turn
            return
        self.to_anchor -= pending

    # -- one partition ------------------------------------------------------------------

    async def _drain(self, tp: Any, records: list[Any]) -> None:
        for record in records:
            if self.limit_reached():
                self.finished.set()
                return
            await self._handle(tp, record)
            if self.commits:
                await self._commit(tp, record.offset + 1)
            if self.limit_reached():
                self.finished.set()
                return
        # Resume fetching now rather than at the main loop's next turn (up to a poll later).
        if tp in self.consumer.assignment():
            self.consumer.resume(tp)

    async def _handle(self, tp: Any, record: Any) -> None:
        where = f"{tp.topic}[{tp.partition}]@{record.offset}"
        try:
            event = decode_alert(record.value)
        except ValueError as exc:
            self.warn(f"capflow alerts: skipping undecodable record {where}: {exc}")
            if self.on_bad is not None:
                await self.on_bad(record, str(exc))
            return
        if self.params.securities and (
            record_security(event, record.key) not in self.params.securities
        ):
            return
        event_id = str(event["id"])
        if event_id in self.seen:
            log.debug("duplicate alert %s at %s dropped", event_id, where)
            return
        await self.on_record(event, record)
        self.seen.add(event_id)
        self.handled += 1

    async def _commit(self, tp: Any, offset: int) -> None:
        from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

        attempt = 0
        while True:
            attempt += 1
            try:
                await self.consumer.commit({tp: offset})
                return
            except (CommitFailedError, IllegalStateError) as exc:
                # The partition moved to another member: it re-reads from the last commit.
                log.warning("commit of %s@%d not possible (%s); partition moved", tp, offset, exc)
                raise asyncio.CancelledError from exc
            except KafkaError as exc:
                delay = min(0.5 * attempt, 5.0)
                log.warning("commit of %s@%d failed (%s); retry in %.1fs", tp, offset, exc, delay)
                await asyncio.sleep(delay)


async def follow_alerts(
    params: FollowParams,
    on_event: EventHandler | None = None,
    *,
    on_record: RecordHandler | None = None,
    on_undecodable: BadRecordHandler | None = None,
    warn: Callable[[str], None] | None = None,
    on_ready: Callable[[list[Any]], None] | None = None,
) -> int:
    """Consume alerts and hand each new alert id to the handler; returns how many.

    ``on_event(event)`` or ``on_record(event, record)`` (awaited if it returns an
    awaitable) is called once per new id. With ``params.group`` the record's offset
    is committed only after the handler returned; an exception from the handler stops
    the follower without committing. Records that do not decode are reported through
    ``warn`` (and ``on_undecodable``) and skipped. Stops after ``max_events`` alerts
    or ``timeout`` seconds (if set), else runs until cancelled.
    """
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

    if (on_event is None) == (on_record is None):
        raise TypeError("pass exactly one of on_event and on_record")
    if on_record is None:
        assert on_event is not None
        event_handler = on_event

        async def on_record(event: dict[str, Any], record: Any) -> None:
            result = event_handler(event)
            if inspect.isawaitable(result):
                await result

    consumer = AIOKafkaConsumer(
        group_id=params.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if params.from_beginning else "latest",
        # A partition resumed after its alert was handled joins the next fetch request;
        # a short long-poll keeps that wait (and so alert latency) short.
        fetch_max_wait_ms=100,
        **params.kafka,
    )
    follower = _Follower(
        consumer, params, on_record, on_undecodable, warn or _warn_stderr, on_ready
    )

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked: set[Any]) -> None:
            await follower.revoke(set(revoked))

        async def on_partitions_assigned(self, assigned: set[Any]) -> None:
            follower.assign(set(assigned))

    consumer.subscribe([params.topic], listener=Listener())
    await consumer.start()
    try:
        return await follower.run()
    finally:
        await consumer.stop()
