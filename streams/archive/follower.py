"""Follow the topics as a consumer group and archive them: at least once, never a duplicate.

Per topic partition the follower collects consecutive offsets in a :class:`Batch`.
Every ``flush_records`` records or ``flush_seconds`` seconds (whichever comes first)
it writes the open batches (``ArchiveWriter``: fsync and atomic rename) and only then
commits their offsets. A crash can therefore leave files whose offsets were never
committed, some of a batch's files or all of them; nothing else.

The archive itself says how far it got: its newest range per partition is the one a
crash may have cut short. When a partition is assigned and that range reaches the
committed offset or beyond it (or the group has no committed offset), the follower
reads the range again and writes exactly that range (same offsets, same file names),
replacing what is there and adding what is missing, before it goes on. A crash at any
point thus leaves no duplicate row and no missing one. Without files or a committed
offset a partition starts at the end (``--from-beginning``: the start), and that
start is committed at once so a restart continues from there.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from streams.archive.datasets import DATASETS, BadRecord, Dataset
from streams.archive.layout import LOCK_NAME, SCRATCH_NAME, ArchivedFile, ArchiveError, Scan, scan
from streams.archive.query import range_rows
from streams.archive.writer import ArchiveWriter, Batch, make_dirs

Say = Callable[[str], None]
SKIPS_SHOWN = 10  # undecodable records reported one by one; later ones are only counted


@dataclass(frozen=True)
class ArchiveOptions:
    """What ``capflow archive`` runs with."""

    root: Path
    datasets: dict[str, Dataset]  # topic -> the dataset it is archived as
    kafka: dict[str, Any]
    group: str
    connect_timeout: float = 30.0  # how long a broker that does not answer is waited for
    from_beginning: bool = False
    flush_records: int = 100_000
    flush_seconds: float = 300.0
    stop_at_end: bool = False


@dataclass
class Totals:
    """What one run archived."""

    rows: int = 0
    files: int = 0
    skipped: int = 0


@dataclass
class _Partition:
    """A partition this member archives: its open batch, and a range to write again."""

    batch: Batch
    next: int  # the next offset to take; a record below it was already taken
    since: float | None = None  # monotonic time of the open batch's first record
    redo: tuple[int, int] | None = None  # archived beyond the committed offset
    end: int | None = None  # --stop-at-end: the end offset when assigned


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the archive's lock: one writer per directory (readers need none)."""
    make_dirs(root)
    with open(root / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            raise ArchiveError(f"another capflow archive (pid {owner}) is writing {root}") from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield


class Archiver:
    """The follow loop of one ``capflow archive`` run (see the module docstring)."""

    def __init__(
        self,
        options: ArchiveOptions,
        consumer: AIOKafkaConsumer,
        writer: ArchiveWriter,
        archived: Scan,
        say: Say,
        stop: asyncio.Event,
    ) -> None:
        self.options = options
        self.stop = stop
        self.consumer = consumer
        self.writer = writer
        self.archived = archived
        # The newest range with files written by this run, per (topic, partition): what
        # a scan would find now, without keeping every file in memory.
        self.written: dict[tuple[str, int], tuple[int, int]] = {}
        self.say = say
        self.parts: dict[TopicPartition, _Partition] = {}
        self.lock = asyncio.Lock()
        self.totals = Totals()
        # Record fields this release has no column for, per dataset: said once each.
        self.unknown: dict[str, set[tuple[str, ...]]] = {
            d.name: set() for d in options.datasets.values()
        }
        self.unknown_told: set[tuple[str, tuple[str, ...]]] = set()
        self.assigned_once = False
        # aiokafka only logs what a rebalance listener raises: keep it for the loop.
        self.failure: BaseException | None = None

    # -- partitions coming and going -----------------------------------------------------

    async def assigned(self, tps: set[TopicPartition]) -> None:
        """Start each partition where :meth:`_start` says.

        The consumer fetches and returns a partition's records as soon as it has a
        position, while this listener still runs (the follow loop takes them meanwhile).
        So the partition moves to its start and becomes ours with no await in between:
        a record read from there can never find it missing and be passed over.
        """
        try:
            for tp in sorted(tps):
                part = await self._start(tp)
                self.consumer.seek(tp, part.next)
                self.parts[tp] = part
        except Exception as exc:  # raised again by the loop: the command fails, not quietly
            self.failure = exc
        self.assigned_once = True

    async def revoked(self, tps: set[TopicPartition]) -> None:
        """Drop the open batches of partitions taken away; their next owner reads them."""
        async with self.lock:  # a write in progress finishes and commits first
            for tp in tps:
                self.parts.pop(tp, None)

    async def _start(self, tp: TopicPartition) -> _Partition:
        """Where a newly assigned partition starts, and whether a range is to be rewritten
        (everything asked of the broker before the consumer is moved there)."""
        dataset = self.options.datasets[tp.topic]
        committed = await self.consumer.committed(tp)
        key = (tp.topic, tp.partition)
        found = self.written.get(key) or self.archived.last_range(*key)
        redo = None
        if found is not None and (committed is None or committed <= found[1]):
            start, redo = found[0], found
            why = (
                f"writing offsets {found[0]}-{found[1]} again (archived, not committed)"
                if committed is not None
                else f"the group has no offset; writing the archive's last range {found[0]}-"
                f"{found[1]} again, then on"
            )
        elif committed is not None:
            start, why = committed, "the group's committed offset"
        else:
            if self.options.from_beginning:
                start = (await self.consumer.beginning_offsets([tp]))[tp]
                why = "the beginning (new group, --from-beginning)"
            else:
                start = (await self.consumer.end_offsets([tp]))[tp]
                why = "the end (new group; --from-beginning archives what the topic holds)"
            await self.consumer.commit({tp: start})  # a restart continues from here
        part = _Partition(Batch(dataset, tp.topic, tp.partition), start, redo=redo)
        if self.options.stop_at_end:
            part.end = (await self.consumer.end_offsets([tp]))[tp]
        self.say(f"{tp.topic}[{tp.partition}] from offset {start}: {why}")
        return part

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> Totals:
        """Archive until stopped (or at the end with ``stop_at_end``); the open batches
        are written and committed before it returns."""
        limit = self.options.flush_records
        while not self.stop.is_set():
            fetched = await self.consumer.getmany(timeout_ms=200, max_records=limit)
            if self.failure is not None:
                raise self.failure
            for tp, records in fetched.items():
                for record in records:
                    await self._take(tp, record)
                    if self.waiting >= limit:
                        await self._flush(self._open())
            if self._open() and time.monotonic() - self._oldest() >= self.options.flush_seconds:
                await self._flush(self._open())
            if self.options.stop_at_end and await self._at_end():
                break
        await self._flush([tp for tp, part in self.parts.items() if part.redo is None])
        return self.totals

    async def _at_end(self) -> bool:
        """Every partition of the topics is ours and read up to its end offset at assignment.

        (A partition of a topic created a moment ago can be assigned a little later.)
        """
        if not self.assigned_once:
            return False
        for topic in self.options.datasets:
            for partition in self.consumer.partitions_for_topic(topic) or ():
                if TopicPartition(topic, partition) not in self.parts:
                    return False
        for tp, part in list(self.parts.items()):
            if part.end is not None and await self.consumer.position(tp) < part.end:
                return False
        return True

    def _row(self, dataset: Dataset, record: Any) -> dict[str, Any] | None:
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        origin = (record.partition, record.offset, record.timestamp)
        try:
            return dataset.kafka_row(record.key, record.value, origin, self.unknown[dataset.name])
        except BadRecord as exc:
            self.totals.skipped += 1
            if self.totals.skipped <= SKIPS_SHOWN:
                self.say(f"skipped {where}: {exc} (not archived; the worker dead-letters it)")
            return None

    async def _take(self, tp: TopicPartition, record: Any) -> None:
        part = self.parts.get(tp)
        if part is None or record.offset < part.next:
            return  # revoked meanwhile, or fetched before the seek to where it starts
        if part.redo is not None:
            first, last = part.redo
            if part.batch.first is None and record.offset > first:
                await self._keep_archived(tp, part, record.offset)
            if record.offset > last:  # the range ended on offsets without records
                await self._flush([tp])
                part.redo = None  # (nothing to write: nothing to redo either)
        part.batch.take(record.offset, self._row(part.batch.dataset, record))
        part.next = record.offset + 1
        if part.since is None:
            part.since = time.monotonic()
        self._tell_unknown(part.batch.dataset)
        if part.redo is not None and record.offset >= part.redo[1]:
            await self._flush([tp])

    async def _keep_archived(self, tp: TopicPartition, part: _Partition, available: int) -> None:
        """The range being written again starts on offsets the topic no longer has
        (retention ran while the archive was stopped): take their rows from the range's
        archived files, so the rewrite keeps them."""
        assert part.redo is not None
        first, last = part.redo
        dataset = part.batch.dataset
        rows = await asyncio.to_thread(
            range_rows, self.options.root, dataset, tp.topic, tp.partition, first, last, available
        )
        for row in rows:
            part.batch.take(row["kafka_offset"], row)
        part.batch.first = first
        self.say(
            f"{tp.topic}[{tp.partition}]: offsets {first}-{available - 1} are gone from the "
            f"topic; {len(rows)} archived rows of them are kept from the files of {first}-{last}"
        )

    def _tell_unknown(self, dataset: Dataset) -> None:
        for path in sorted(self.unknown[dataset.name]):
            if (dataset.name, path) not in self.unknown_told:
                self.unknown_told.add((dataset.name, path))
                self.say(
                    f"{dataset.name} records carry {'.'.join(path)!r}, which this capflow "
                    "does not archive (a newer producer? upgrade capflow)"
                )

    def _open(self) -> list[TopicPartition]:
        """Partitions with records waiting to be written (a range being redone waits for its
        end instead)."""
        return [tp for tp, p in self.parts.items() if p.batch.records and p.redo is None]

    def _oldest(self) -> float:
        return min(self.parts[tp].since or 0.0 for tp in self._open())

    @property
    def waiting(self) -> int:
        """Records taken and not yet written, over all partitions."""
        return sum(p.batch.records for p in self.parts.values())

    # -- writing and committing ------------------------------------------------------------

    async def _flush(self, tps: list[TopicPartition]) -> None:
        async with self.lock:
            parts = [(tp, self.parts[tp]) for tp in tps if tp in self.parts]
            jobs = []
            for tp, part in parts:
                batch = part.batch
                if not batch.records or batch.first is None:
                    continue
                first, last = part.redo or (batch.first, batch.last)
                jobs.append((tp, batch, first, last))
            if not jobs:
                return
            written = await asyncio.to_thread(self._write, jobs)
            committed = await self._commit({tp: last + 1 for tp, _, _, last in jobs})
            for tp, batch, _, _ in jobs:
                if (done := self.parts.get(tp)) is not None:
                    done.batch = Batch(batch.dataset, batch.topic, batch.partition)
                    done.since = done.redo = None
            for done_file in written:
                self.written[(done_file.topic, done_file.partition)] = (
                    done_file.first,
                    done_file.last,
                )
            self._progress(jobs, written, committed)

    def _write(self, jobs: list[tuple[TopicPartition, Batch, int, int]]) -> list[ArchivedFile]:
        written: list[ArchivedFile] = []
        for _, batch, first, last in jobs:
            written += self.writer.write(batch, first, last)
        return written

    async def _commit(self, offsets: dict[TopicPartition, int]) -> bool:
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            self.say(
                f"could not commit ({exc}); the partitions moved to another member, which "
                "writes the same ranges again (same files, no duplicates)"
            )
            return False
        return True

    def _progress(
        self,
        jobs: list[tuple[TopicPartition, Batch, int, int]],
        written: list[ArchivedFile],
        committed: bool,
    ) -> None:
        rows = sum(batch.rows for _, batch, _, _ in jobs)
        self.totals.rows += rows
        self.totals.files += len(written)
        per: dict[str, int] = {}
        for _, batch, _, _ in jobs:
            per[batch.dataset.name] = per.get(batch.dataset.name, 0) + batch.rows
        what = ", ".join(f"{n} {name}" for name, n in per.items())
        lag = 0
        for tp, part in self.parts.items():
            high = self.consumer.highwater(tp)
            lag += max(0, (high or part.next) - part.next)
        skipped = f", {self.totals.skipped} skipped" if self.totals.skipped else ""
        state = "committed" if committed else "NOT committed"
        self.say(
            f"wrote {what} in {len(written)} file(s), {state}; {self.totals.rows} rows this "
            f"run{skipped}, lag {lag}"
        )


@contextmanager
def open_archive(root: Path) -> Iterator[tuple[ArchiveWriter, Scan]]:
    """Lock ``root``, check everything in it, clear a crashed writer's leftovers; a writer
    and what the archive holds. ArchiveError names a foreign or damaged file."""
    with locked(root):
        archived = scan(root, DATASETS)
        for leftover in archived.leftovers:
            leftover.unlink(missing_ok=True)
        shutil.rmtree(root / SCRATCH_NAME, ignore_errors=True)
        writer = ArchiveWriter(root)
        try:
            yield writer, archived
        finally:
            writer.close()


async def follow(
    options: ArchiveOptions, writer: ArchiveWriter, archived: Scan, say: Say, stop: asyncio.Event
) -> Totals:
    """Archive until ``stop`` is set (or the end, with ``stop_at_end``); what it wrote."""
    consumer = AIOKafkaConsumer(
        group_id=options.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # an offset gone by retention: the oldest kept, not the end
        **options.kafka,
    )
    archiver = Archiver(options, consumer, writer, archived, say, stop)

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
            await archiver.revoked(set(revoked))

        async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
            await archiver.assigned(set(assigned))

    consumer.subscribe(sorted(options.datasets), listener=Listener())
    await consumer.start()
    try:
        return await archiver.run()
    finally:
        await consumer.stop()
