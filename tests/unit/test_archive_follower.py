"""The archive's follow loop against a consumer that behaves as aiokafka's does around an
assignment: records of a partition are fetched and returned as soon as it has a position,
while the rebalance listener is still setting the partitions up.

The archive is real Parquet; the consumer is the only stand-in (the same runs against
the real broker are in tests/integration/test_archive.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from streams.archive.datasets import SNAPSHOTS
from streams.archive.follower import ArchiveOptions, Archiver, Totals, open_archive
from streams.archive.query import DayRange, read_rows
from streams.archive.writer import ArchiveWriter
from streams.devtools.archive import KAFKA_TIMESTAMP_MS, snapshot_at, write_records

TOPIC = "capflow.distribution.v1"
TP = TopicPartition(TOPIC, 0)
T0 = 1_717_378_200.0  # 2024-06-03 09:30 HKT
ROUND_TRIP = 3  # loop turns a request to the broker takes: the follow loop runs meanwhile

Record = tuple[bytes, bytes]


def records(n: int) -> list[Record]:
    """Snapshots of an HK and a US security in turn: a range of them makes two files."""
    out = []
    for i in range(n):
        security, t = ("HK.00700", T0) if i % 2 == 0 else ("US.AAPL", T0 + 12 * 3600 + 1800)
        msg = snapshot_at(security, t + i, [1e6 + i] * 8, i)
        out.append((security.encode(), msg.SerializeToString()))
    return out


class OnlyMember:
    """The consumer of the group's only member, as the archiver uses it.

    Like aiokafka: at an assignment each partition's position is reset to the group's
    committed offset by the consumer itself, and getmany() returns records from a
    partition's position from then on, also while the listener's requests (committed
    offsets, end offsets, commits) are on their way.
    """

    def __init__(self, log: list[Record], committed: int | None) -> None:
        self.log = {TP: log}
        self.commits = {} if committed is None else {TP: committed}
        self.positions: dict[TopicPartition, int] = {}
        self.assignment = asyncio.Event()
        self.listening = False
        self.returned_to_listener = 0  # records getmany() returned while the listener ran

    async def _round_trip(self) -> None:
        for _ in range(ROUND_TRIP):
            await asyncio.sleep(0)

    async def join(self, archiver: Archiver) -> None:
        """Get every partition and tell the archiver, as the group coordinator does."""
        await self._round_trip()
        self.positions = {tp: self.commits.get(tp, 0) for tp in self.log}
        self.assignment.set()
        self.listening = True
        await archiver.assigned(set(self.log))
        self.listening = False

    async def getmany(
        self, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        await self.assignment.wait()  # then records, even before the listener is done
        await asyncio.sleep(0)
        fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        for tp, position in self.positions.items():
            end = min(len(self.log[tp]), position + max_records)
            if end > position:
                fetched[tp] = [self._record(tp, offset) for offset in range(position, end)]
                self.positions[tp] = end
                max_records -= end - position
                if self.listening:
                    self.returned_to_listener += end - position
        return fetched

    def _record(self, tp: TopicPartition, offset: int) -> ConsumerRecord[bytes, bytes]:
        key, value = self.log[tp][offset]
        return ConsumerRecord(
            tp.topic, tp.partition, offset, KAFKA_TIMESTAMP_MS, 0, key, value, None,
            len(key), len(value), (),
        )  # fmt: skip

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def committed(self, tp: TopicPartition) -> int | None:
        await self._round_trip()
        return self.commits.get(tp)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self._round_trip()
        self.commits.update(offsets)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        await self._round_trip()
        return {tp: len(self.log[tp]) for tp in tps}

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        await self._round_trip()
        return dict.fromkeys(tps, 0)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {tp.partition for tp in self.log if tp.topic == topic}

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.log[tp])


async def archive_to_end(root: Path, consumer: OnlyMember) -> tuple[Totals, list[str]]:
    """One ``capflow archive --stop-at-end`` run on ``consumer``: what it archived and said."""
    options = ArchiveOptions(
        root=root, datasets={TOPIC: SNAPSHOTS}, kafka={}, group="g", from_beginning=True,
        flush_seconds=3600.0, stop_at_end=True,
    )  # fmt: skip
    said: list[str] = []
    with open_archive(root) as (writer, found):
        archiver = Archiver(
            options, cast(AIOKafkaConsumer, consumer), writer, found, said.append, asyncio.Event()
        )
        joining = asyncio.create_task(consumer.join(archiver))
        totals = await asyncio.wait_for(archiver.run(), 30)
        await joining
    return totals, said


def archived_offsets(root: Path) -> list[int]:
    """The offset of every row in the archive, duplicates kept."""
    return sorted(r["kafka_offset"] for r in read_rows(root, SNAPSHOTS, DayRange(), None))


@pytest.mark.parametrize(
    ("committed", "why"),
    [(10, "the group's committed offset"), (None, "the beginning (new group, --from-beginning)")],
)
async def test_records_fetched_while_a_partition_is_set_up_are_archived(
    tmp_path: Path, committed: int | None, why: str
) -> None:
    """Records of the partition arrive from where it starts while the archiver still asks
    the broker about it (--stop-at-end: its end offset): each is archived once."""
    log = records(30)
    start = committed or 0
    writer = ArchiveWriter(tmp_path)
    try:
        write_records(writer, SNAPSHOTS, TOPIC, 0, log[:start])  # archived and committed
    finally:
        writer.close()
    consumer = OnlyMember(log, committed)
    totals, said = await archive_to_end(tmp_path, consumer)
    assert consumer.returned_to_listener  # the case this is about did happen
    assert f"{TOPIC}[0] from offset {start}: {why}" in said
    assert archived_offsets(tmp_path) == list(range(30))
    assert totals.rows == 30 - start


async def test_a_cut_range_is_rewritten_from_records_fetched_while_it_is_set_up(
    tmp_path: Path,
) -> None:
    """The range 10-19 lost its US file in a crash and was not committed: it is written
    again from the topic, whose records arrive while the archiver sets the partition up."""
    log = records(30)
    writer = ArchiveWriter(tmp_path)
    try:
        write_records(writer, SNAPSHOTS, TOPIC, 0, log[:10])
        cut = write_records(writer, SNAPSHOTS, TOPIC, 0, log[10:20], first_offset=10)
    finally:
        writer.close()
    (us,) = [f for f in cut if f.market == "US"]
    us.path.unlink()  # the crash came before this file was renamed into place
    consumer = OnlyMember(log, 10)
    _, said = await archive_to_end(tmp_path, consumer)
    assert consumer.returned_to_listener
    assert f"{TOPIC}[0] from offset 10: writing offsets 10-19 again" in "\n".join(said)
    assert not [line for line in said if "gone from the topic" in line], said
    assert archived_offsets(tmp_path) == list(range(30))
