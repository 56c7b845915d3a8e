"""Archives written without Kafka, through the archive's own rows and writer.

Tests and ``bench/history_query.py`` need Parquet archives of known content; these
helpers build each row as ``capflow archive`` does (``Dataset.kafka_row`` on the
record's bytes) and write it with :class:`ArchiveWriter`, as if the records had sat at
consecutive offsets of one topic partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from streams.archive.datasets import Dataset
from streams.archive.layout import ArchivedFile
from streams.archive.writer import ArchiveWriter, Batch
from streams.domain.market import parse_security, zone
from streams.domain.snapshot_record import snapshot_to_proto
from streams.domain.validation import AMOUNT_FIELDS
from streams.opend.snapshot import CapitalDistribution
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot

KAFKA_TIMESTAMP_MS = 1_717_400_000_000


def write_records(
    writer: ArchiveWriter,
    dataset: Dataset,
    topic: str,
    partition: int,
    records: Iterable[tuple[bytes | None, bytes]],
    *,
    first_offset: int = 0,
    per_file: int | None = None,
) -> list[ArchivedFile]:
    """Archive (key, value) records as offsets ``first_offset``, ... of one partition.

    ``per_file`` records make one offset range (as one flush of ``capflow archive``
    does); None: all in one range. A record that does not decode raises BadRecord.
    """
    written: list[ArchivedFile] = []
    batch = Batch(dataset, topic, partition)
    offset = first_offset
    for key, value in records:
        batch.take(offset, dataset.kafka_row(key, value, (partition, offset, KAFKA_TIMESTAMP_MS)))
        offset += 1
        if per_file is not None and batch.records >= per_file:
            written += _flush(writer, batch)
            batch = Batch(dataset, topic, partition)
    return written + _flush(writer, batch)


def _flush(writer: ArchiveWriter, batch: Batch) -> list[ArchivedFile]:
    if batch.first is None:
        return []
    return writer.write(batch, batch.first, batch.last)


def archive_records(
    root: Path,
    dataset: Dataset,
    records: Iterable[tuple[bytes | None, bytes]],
    *,
    topic: str = "capflow.test.v1",
    partition: int = 0,
    per_file: int | None = None,
) -> list[ArchivedFile]:
    """:func:`write_records` into a fresh writer on ``root``."""
    writer = ArchiveWriter(root)
    try:
        return write_records(writer, dataset, topic, partition, records, per_file=per_file)
    finally:
        writer.close()


def snapshot_at(
    security: str, t: float, amounts: Sequence[float | None], seq: int = 0
) -> DistributionSnapshot:
    """The record the poller publishes for a reply at epoch ``t`` with these eight amounts
    (AMOUNT_FIELDS order; None: an absent super amount), trading day and all."""
    sec = parse_security(security)
    local = datetime.fromtimestamp(t, zone(sec.market))
    by_name: dict[str, Any] = dict(zip(AMOUNT_FIELDS, amounts, strict=True))
    reading = CapitalDistribution(
        security=str(sec),
        market=sec.market,
        qot_market=sec.qot_market,
        code=sec.code,
        **by_name,
        update_time=local.strftime("%Y-%m-%d %H:%M:%S"),
        update_timestamp=t,
    )
    return snapshot_to_proto(reading, "devtools://generated", int(t * 1000) + 150, seq)
