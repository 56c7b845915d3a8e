"""`capflow archive` against the real broker: kill -9 and restart lose no row and double none.

The archive is checked row by row against the topics (every record that decodes, by
topic partition and offset, exactly once), read with DuckDB and with pyarrow.
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

import orjson
import pyarrow.dataset as pads
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from streams.archive.datasets import DATASETS, FLOWS, SNAPSHOTS, BadRecord, Dataset
from streams.archive.follower import ArchiveOptions, follow, open_archive
from streams.archive.query import DayRange, read_rows
from streams.archive.writer import ArchiveWriter
from streams.kafka.topics import ensure_topics
from tests.integration.harness import Topics, capflow, read_to_end, run_cli, wait_for

pytestmark = pytest.mark.integration

T0 = 1_717_378_200.0  # 2024-06-03 09:30 HKT
SECURITIES = ["HK.00700", "HK.09988", "HK.00005", "US.AAPL", "US.MSFT", "SH.600519"]


def snapshot_value(i: int) -> tuple[bytes, bytes]:
    """Snapshot i: six securities in three markets, over two trading days."""
    from streams.devtools.archive import snapshot_at

    security = SECURITIES[i % len(SECURITIES)]
    day = 86_400.0 * (i // 600)  # a second day after 600 snapshots
    offset = {"HK": 0.0, "US": 12 * 3600.0 + 1800.0, "SH": 0.0}[security[:2]]
    t = T0 + day + offset + 5.0 * (i // len(SECURITIES))
    amounts = [1e6 + 1e3 * i + k for k in range(8)]
    return security.encode(), snapshot_at(security, t, amounts, i).SerializeToString()


def flow_value(i: int) -> tuple[bytes, bytes]:
    security = SECURITIES[i % 3]
    record = {
        "schema": "capflow.flow.v1", "security": security, "market": "HK",
        "trading_day": "2024-06-03", "event_time": "2024-06-03T01:30:00Z", "event_ts": T0 + i,
        "window_s": 300.0, "net": {"super": 1.0, "big": 2.0, "mid": 3.0, "small": float(i)},
        "large_net": 3.0, "turnover": 10.0 + i,
        "change": {"super": 0.1, "big": 0.2, "mid": 0.3, "small": 0.4, "large": 0.3,
                   "turnover": 1.0},
        "threshold": 0.5, "regime": "INFLOW", "snapshots_in_window": 2,
    }  # fmt: skip
    return security.encode(), orjson.dumps(record)


async def produce(bootstrap: str, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for key, value in values:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def produce_until(
    bootstrap: str, topics: Topics, bad: dict[int, bytes], stop: asyncio.Event
) -> None:
    """Snapshots (some of them ``bad``) and flows, about 100 and 10 a second, until ``stop``."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        i = 0
        while not stop.is_set() or i < 1000:
            for n in range(i, i + 20):
                key, value = snapshot_value(n)
                await producer.send(topics.distribution, bad.get(n, value), key=key)
            for n in (i // 10, i // 10 + 1):
                key, value = flow_value(n)
                await producer.send(topics.flow, value, key=key)
            i += 20
            await asyncio.sleep(0.2)
        await producer.flush()
    finally:
        await producer.stop()


def archive_argv(root: Path, topics: Topics, bootstrap: str, *extra: str) -> list[str]:
    return [
        "archive", str(root), "--flows", "--topic-distribution", topics.distribution,
        "--topic-flow", topics.flow, "--kafka-bootstrap", bootstrap, *extra,
    ]  # fmt: skip


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/market=*/trading_day=*/*.parquet"))


async def expected_rows(bootstrap: str, topic: str, dataset: Dataset) -> set[tuple[int, int]]:
    """(partition, offset) of every record of ``topic`` that the archive must hold."""
    keep = set()
    for rec in await read_to_end(bootstrap, topic):
        try:
            dataset.kafka_row(rec.key, rec.value, (rec.partition, rec.offset, rec.timestamp))
        except BadRecord:
            continue
        keep.add((rec.partition, rec.offset))
    return keep


def archived(root: Path, dataset: Dataset) -> list[tuple[int, int]]:
    """(partition, offset) of every row, duplicates kept, read by DuckDB and by pyarrow."""
    rows = [
        (r["kafka_partition"], r["kafka_offset"])
        for r in read_rows(root, dataset, DayRange("2000-01-01"), None)
    ]
    table = pads.dataset(root / dataset.name, format="parquet", partitioning="hive").to_table()
    columns = (table["kafka_partition"].to_pylist(), table["kafka_offset"].to_pylist())
    arrow = list(zip(*columns, strict=True))
    assert sorted(arrow) == sorted(rows)
    return rows


def assert_exactly_once(rows: list[tuple[int, int]], expected: set[tuple[int, int]]) -> None:
    doubled = len(rows) - len(set(rows))
    assert doubled == 0, f"{doubled} duplicate rows"
    assert set(rows) == expected, (
        f"missing {sorted(expected - set(rows))[:10]}, extra {sorted(set(rows) - expected)[:10]}"
    )


async def test_kill_9_mid_archive_then_restart_leaves_each_row_once(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    kafka = {"bootstrap_servers": kafka_bootstrap}
    await ensure_topics(kafka, [topics.distribution, topics.flow], 3)
    bad = {77: b"\xff not a snapshot", 901: snapshot_value(902)[1]}  # dead-lettered ones
    root, log = tmp_path / "archive", tmp_path / "archive.log"
    argv = archive_argv(
        root, topics, kafka_bootstrap, "--from-beginning", "--flush-records", "40",
        "--flush-seconds", "0.2",
    )  # fmt: skip
    killed = asyncio.Event()  # records keep coming until the last run is killed
    writing = asyncio.create_task(produce_until(kafka_bootstrap, topics, bad, killed))
    rng = random.Random(17)
    try:
        for _ in range(3):  # each run is killed at a random moment after it wrote twice
            archive = capflow(*argv, log=log, append=True)  # one log for the three runs
            before = log.read_text().count("\ncapflow archive: wrote ")
            try:
                await wait_for(
                    lambda n=before: log.read_text().count("\ncapflow archive: wrote ") >= n + 2,
                    90,
                    "two writes of this run",
                )
                await asyncio.sleep(rng.uniform(0.0, 0.4))
            finally:
                archive.kill()
        killed.set()
        await writing
    finally:
        writing.cancel()
    code, out, err = await run_cli(*argv, "--stop-at-end", timeout=120)
    assert code == 0, err + log.read_text()
    assert "archived" in out
    assert "skipped" in log.read_text() + err  # the two bad records, said by whichever run
    for topic, dataset in ((topics.distribution, SNAPSHOTS), (topics.flow, FLOWS)):
        expected = await expected_rows(kafka_bootstrap, topic, dataset)
        assert_exactly_once(archived(root, dataset), expected)
    assert len(expected) >= 100
    assert not list(root.rglob(".*.tmp")), "a crashed writer's temporary file is still there"


class CrashAfterOneFile(ArchiveWriter):
    """Dies like a killed process between two files of one flush (nothing committed)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.files = 0

    def _copy(self, dataset: Dataset, lines: list[bytes], final: Path) -> None:
        if self.files == 4:  # the first range has three files (HK, US, SH)
            raise SystemExit("crash between two files of one range")
        super()._copy(dataset, lines, final)
        self.files += 1


@pytest.mark.parametrize("restart_group", ["same", "new"])
async def test_a_range_cut_short_by_a_crash_is_written_again_exactly(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, restart_group: str
) -> None:
    """A crash after some files of a range: the restart writes that range under the same
    names (the missing files too) and goes on, with the same group or a new one."""
    topics = Topics(topic_prefix)
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, [topics.distribution], 1)
    await produce(kafka_bootstrap, topics.distribution, [snapshot_value(i) for i in range(900)])
    root = tmp_path / "archive"
    options = ArchiveOptions(
        root=root, datasets={topics.distribution: DATASETS["snapshots"]},
        kafka={"bootstrap_servers": kafka_bootstrap}, group=f"{topic_prefix}-g",
        from_beginning=True, flush_records=250, flush_seconds=30.0, stop_at_end=True,
    )  # fmt: skip
    with pytest.raises(SystemExit), open_archive(root) as (_, found):
        crashing = CrashAfterOneFile(root)
        await follow(options, crashing, found, lambda _: None, asyncio.Event())
    names = {p.name for p in parquet_files(root)}
    assert len(parquet_files(root)) == 4 and len(names) == 2  # one range whole, one cut
    group = options.group if restart_group == "same" else f"{topic_prefix}-other"
    code, _, err = await run_cli(
        "archive", str(root), "--topic-distribution", topics.distribution, "--group", group,
        "--kafka-bootstrap", kafka_bootstrap, "--stop-at-end", timeout=120,
    )  # fmt: skip
    assert code == 0, err
    assert "again" in err, err  # it says it rewrites the range
    expected = await expected_rows(kafka_bootstrap, topics.distribution, SNAPSHOTS)
    assert len(expected) == 900
    assert_exactly_once(archived(root, SNAPSHOTS), expected)


async def test_rows_retention_removed_from_a_cut_range_are_kept_from_its_files(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Crash in a range, then the topic drops that range's first records before the
    restart: the rewrite keeps their archived rows and archives everything still there."""
    topics = Topics(topic_prefix)
    kafka = {"bootstrap_servers": kafka_bootstrap}
    await ensure_topics(kafka, [topics.distribution], 1)
    await produce(kafka_bootstrap, topics.distribution, [snapshot_value(i) for i in range(900)])
    root = tmp_path / "archive"
    options = ArchiveOptions(
        root=root, datasets={topics.distribution: SNAPSHOTS}, kafka=kafka,
        group=f"{topic_prefix}-g", from_beginning=True, flush_records=250, stop_at_end=True,
    )  # fmt: skip
    with pytest.raises(SystemExit), open_archive(root) as (_, found):
        await follow(options, CrashAfterOneFile(root), found, lambda _: None, asyncio.Event())
    cut = [p for p in parquet_files(root) if p.name.endswith("-250-499.parquet")]
    assert len(cut) == 1  # one file of the range 250-499 made it
    archived_early = {row for row in archived(root, SNAPSHOTS) if row[1] < 260}
    before = {row for row in archived_early if row[1] >= 250}
    assert before  # rows of the offsets about to be deleted are in that file
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        tp = TopicPartition(topics.distribution, 0)
        await admin.delete_records({tp: RecordsToDelete(before_offset=260)})
    finally:
        await admin.close()
    code, _, err = await run_cli(
        "archive", str(root), "--topic-distribution", topics.distribution, "--group",
        options.group, "--kafka-bootstrap", kafka_bootstrap, "--stop-at-end", timeout=120,
    )  # fmt: skip
    assert code == 0, err
    assert f"{len(before)} archived rows of them are kept" in err, err
    expected = await expected_rows(kafka_bootstrap, topics.distribution, SNAPSHOTS)
    assert min(offset for _, offset in expected) == 260
    assert_exactly_once(archived(root, SNAPSHOTS), expected | archived_early)


async def test_a_foreign_file_stops_the_archive_with_its_name(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    (root / "snapshots" / "market=HK").mkdir(parents=True)
    (root / "snapshots" / "market=HK" / "notes.csv").write_text("x")
    code, out, err = await run_cli("archive", str(root), "--kafka-bootstrap", "127.0.0.1:1")
    assert code == 1 and out == ""
    assert "notes.csv is not part of a capflow archive" in err


async def test_sigterm_writes_what_is_open_and_commits(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, [topics.distribution], 2)
    await produce(kafka_bootstrap, topics.distribution, [snapshot_value(i) for i in range(50)])
    root, log = tmp_path / "archive", tmp_path / "log"
    argv = [
        "archive", str(root), "--topic-distribution", topics.distribution, "--from-beginning",
        "--kafka-bootstrap", kafka_bootstrap, "--flush-seconds", "3600",
    ]  # fmt: skip
    with capflow(*argv, log=log) as archive:
        await wait_for(lambda: log.read_text().count("from offset 0") == 2, 60, "assignment")
        await asyncio.sleep(1.0)  # the records are read, but no flush is due for an hour
        assert parquet_files(root) == []
        archive.send(signal.SIGTERM)
        assert await archive.wait_exit(60) == 0, log.read_text()
    assert "archived 50 rows" in log.read_text()
    assert_exactly_once(
        archived(root, SNAPSHOTS),
        await expected_rows(kafka_bootstrap, topics.distribution, SNAPSHOTS),
    )
    code, out, err = await run_cli(*argv, "--stop-at-end")  # committed: nothing to do again
    assert code == 0 and "archived 0 rows" in out, err
