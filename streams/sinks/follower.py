"""Read the alerts topic and hand each new alert to a handler, committing only after it.

With a consumer group, each partition is worked by its own lane, in offset order, and
its offset is committed only after the handler returned for that record, so a crash
(even kill -9) re-delivers every alert whose handling had not finished. Commits run in
the background (``OffsetCommitter``): the latest handled offset of each partition is
committed while the next alerts are handled. A stop (SIGTERM) or a rebalance does not
cut a delivery short: the attempt under way gets its answer, a retry pause ends at
once, and what was handled is committed before the partition moves or the follower
leaves the group. A partition being worked is paused, so the main loop keeps polling
(the group keeps its membership during long retries) without piling up records. When
the group has no committed offset yet, the starting position is committed as soon as
the partition is assigned: an alert produced while the follower is down is then read
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

from streams.sinks.commits import OffsetCommitter
from streams.sinks.stop import Stopped, StopSignal

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[Any] | Any]
# (event, record, stop): ``stop`` ends the handler's waits when the partition moves or
# the follower stops; a handler that cannot finish then raises ``Stopped``.
RecordHandler = Callable[[dict[str, Any], Any, StopSignal], Awaitable[Any]]
BadRecordHandler = Callable[[Any, str, StopSignal], Awaitable[Any]]
DEDUPE_MEMORY = 100_000  # ids remembered; bounds memory on very long runs
GRACE = 15.0  # seconds a stop or a rebalance waits for alerts in flight, and for commits


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
    grace: float = GRACE  # longer than one delivery attempt can take


@dataclass(frozen=True)
class _Handlers:
    """What the follower calls: per alert, per undecodable record, warnings, once ready."""

    on_record: RecordHandler
    on_bad: BadRecordHandler | None
    warn: Callable[[str], None]
    on_ready: Callable[[list[Any]], None] | None


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


def warn_stderr(message: str) -> None:
    """Warnings of ``capflow alerts`` go to stderr as they happen."""
    print(message, file=sys.stderr, flush=True)


class _Lane:
    """The work on one partition: its records in order, and the signal that ends it."""

    def __init__(self, task: asyncio.Task[None], stop: StopSignal) -> None:
        self.task = task
        self.stop = stop


class _Follower:
    """The state of one follow run: a lane per partition, anchoring, commits, counting."""

    def __init__(
        self,
        consumer: Any,
        params: FollowParams,
        handlers: _Handlers,
        done: asyncio.Event,
    ) -> None:
        self.consumer = consumer
        self.params = params
        self.handlers = handlers
        self.done = done  # set: the caller's stop (SIGTERM), or the limit was reached
        self.commits = params.group is not None
        self.committer = OffsetCommitter(consumer.commit, consumer.assignment)
        self.lanes: dict[Any, _Lane] = {}
        self.to_anchor: set[Any] = set()
        self.revoking = False
        self.seen = _Seen()
        self.handled = 0
        self.ready = False

    # -- rebalance listener callbacks -------------------------------------------------

    async def revoke(self, partitions: set[Any]) -> None:
        """Before partitions move: finish the alerts in flight there and commit them, so
        the next owner starts after everything this member delivered."""
        self.revoking = True
        try:
            await self._retire(set(partitions), "partitions revoked")
        finally:
            self.revoking = False
        self.to_anchor -= set(partitions)

    def assign(self, partitions: set[Any]) -> None:
        self.to_anchor |= set(partitions)

    async def _retire(self, partitions: set[Any], why: str) -> None:
        """End the lanes of ``partitions``: an attempt under way gets its answer (at most
        ``params.grace`` seconds), a pause ends at once; then commit what was handled."""
        lanes = [self.lanes.pop(tp) for tp in sorted(partitions) if tp in self.lanes]
        for lane in lanes:
            lane.stop.set()
        busy = [lane.task for lane in lanes if not lane.task.done()]
        if busy:
            self.handlers.warn(
                f"capflow alerts: {why}: finishing {len(busy)} alert(s) in flight, "
                "then committing what was delivered"
            )
            _, late = await asyncio.wait(busy, timeout=self.params.grace)
            for task in late:
                task.cancel()
            await asyncio.wait(busy)
            for task in busy:
                if not task.cancelled() and task.exception() is not None:
                    log.error("alert handling failed", exc_info=task.exception())
        if self.commits and not await self.committer.flush(self.params.grace):
            log.warning("commits of %s not confirmed before %s", sorted(partitions), why)
        self.committer.forget(partitions)

    # -- main loop ----------------------------------------------------------------------

    def limit_reached(self) -> bool:
        return self.params.max_events is not None and self.handled >= self.params.max_events

    async def run(self) -> int:
        deadline = None if self.params.timeout is None else time.monotonic() + self.params.timeout
        try:
            while not (self.limit_reached() or self.done.is_set()):
                wait_ms = 1000
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    wait_ms = max(1, min(wait_ms, int(remaining * 1000)))
                batches = await self._fetch(wait_ms)
                if self.commits:
                    await self._anchor(batches)
                else:
                    self.to_anchor.clear()
                self._note_ready()
                self._start_lanes(batches)
                self._reap()
        finally:
            try:
                await self._retire(set(self.lanes), "stopping")
            finally:
                await self.committer.close()
        return self.handled

    async def _fetch(self, wait_ms: int) -> dict[Any, list[Any]]:
        """The next records, or none as soon as the run is asked to end."""
        fetch = asyncio.ensure_future(self.consumer.getmany(timeout_ms=wait_ms))
        ending = asyncio.ensure_future(self.done.wait())
        try:
            await asyncio.wait({fetch, ending}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ending.cancel()
            if not fetch.done():
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fetch
        return {} if fetch.cancelled() else fetch.result()

    def _start_lanes(self, batches: dict[Any, list[Any]]) -> None:
        if self.revoking or self.done.is_set():
            return  # read again from the last commit by whoever owns them next
        for tp, records in batches.items():
            if records:
                self.consumer.pause(tp)
                stop = StopSignal()
                task = asyncio.create_task(self._drain(tp, records, stop))
                self.lanes[tp] = _Lane(task, stop)

    def _note_ready(self) -> None:
        if self.ready:
            return
        assignment = self.consumer.assignment()
        if assignment and not self.to_anchor:
            self.ready = True
            if self.handlers.on_ready is not None:
                self.handlers.on_ready(sorted(assignment))

    def _reap(self) -> None:
        for tp, lane in list(self.lanes.items()):
            if not lane.task.done():
                continue
            del self.lanes[tp]
            if lane.task.cancelled():
                continue
            exc = lane.task.exception()
            if exc is not None:
                raise exc
            if tp in self.consumer.assignment() and not lane.stop.is_set():
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

    async def _drain(self, tp: Any, records: list[Any], stop: StopSignal) -> None:
        for record in records:
            if stop.is_set() or self.limit_reached():
                break
            try:
                await self._handle(tp, record, stop)
            except Stopped:
                return  # not handled: the next run (or owner) reads it again
            if self.commits:
                self.committer.handled(tp, record.offset + 1)
        if self.limit_reached():
            self.done.set()
        elif not stop.is_set() and tp in self.consumer.assignment():
            # Resume fetching now rather than at the main loop's next turn.
            self.consumer.resume(tp)

    async def _handle(self, tp: Any, record: Any, stop: StopSignal) -> None:
        where = f"{tp.topic}[{tp.partition}]@{record.offset}"
        try:
            event = decode_alert(record.value)
        except ValueError as exc:
            self.handlers.warn(f"capflow alerts: skipping undecodable record {where}: {exc}")
            if self.handlers.on_bad is not None:
                await self.handlers.on_bad(record, str(exc), stop)
            return
        if self.params.securities and (
            record_security(event, record.key) not in self.params.securities
        ):
            return
        event_id = str(event["id"])
        if event_id in self.seen:
            log.debug("duplicate alert %s at %s dropped", event_id, where)
            return
        await self.handlers.on_record(event, record, stop)
        self.seen.add(event_id)
        self.handled += 1


async def follow_alerts(
    params: FollowParams,
    on_event: EventHandler | None = None,
    *,
    on_record: RecordHandler | None = None,
    on_undecodable: BadRecordHandler | None = None,
    warn: Callable[[str], None] | None = None,
    on_ready: Callable[[list[Any]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Consume alerts and hand each new alert id to the handler; returns how many.

    ``on_event(event)`` (awaited if it returns an awaitable) or
    ``on_record(event, record, stop)`` is called once per new id. With ``params.group``
    the record's offset is committed only after the handler returned; an exception from
    the handler stops the follower without committing that record. Records that do not
    decode are reported through ``warn`` (and ``on_undecodable``) and skipped. Stops
    after ``max_events`` alerts, ``timeout`` seconds, or once ``stop`` is set (alerts in
    flight finish and are committed first), else runs until cancelled.
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        group_id=params.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if params.from_beginning else "latest",
        # A partition resumed after its alert was handled joins the next fetch request;
        # a short long-poll keeps that wait (and so alert latency) short.
        fetch_max_wait_ms=100,
        **params.kafka,
    )
    handlers = _Handlers(
        _record_handler(on_event, on_record), on_undecodable, warn or warn_stderr, on_ready
    )
    follower = _Follower(consumer, params, handlers, asyncio.Event())
    consumer.subscribe([params.topic], listener=_listener(follower))
    await consumer.start()
    stopping = asyncio.create_task(_set_when(stop, follower.done)) if stop else None
    try:
        return await follower.run()
    finally:
        if stopping is not None:
            stopping.cancel()
        await consumer.stop()


async def _set_when(stop: asyncio.Event, done: asyncio.Event) -> None:
    await stop.wait()
    done.set()


def _record_handler(
    on_event: EventHandler | None, on_record: RecordHandler | None
) -> RecordHandler:
    if (on_event is None) == (on_record is None):
        raise TypeError("pass exactly one of on_event and on_record")
    if on_record is not None:
        return on_record
    assert on_event is not None
    event_handler = on_event

    async def handle(event: dict[str, Any], record: Any, stop: StopSignal) -> None:
        result = event_handler(event)
        if inspect.isawaitable(result):
            await result

    return handle


def _listener(follower: _Follower) -> Any:
    from aiokafka import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked: set[Any]) -> None:
            await follower.revoke(set(revoked))

        async def on_partitions_assigned(self, assigned: set[Any]) -> None:
            follower.assign(set(assigned))

    return Listener()
