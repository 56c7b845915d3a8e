"""Write one offset range of one topic partition as Parquet files, durably, with DuckDB.

A :class:`Batch` collects the rows of consecutive offsets (as JSON lines, grouped
by market and trading day); :meth:`ArchiveWriter.write` turns each group into one
file: DuckDB reads the lines with the dataset's column types and writes them sorted
by security and event time (``COPY ... TO`` a hidden temporary file), the file is
fsynced, renamed into place and its directory fsynced. Only then is the range
durable, and only then may its offsets be committed. Writing the same range again
gives the same names, so the new files replace the old ones.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streams.archive.datasets import Dataset
from streams.archive.layout import (
    SCRATCH_NAME,
    ArchivedFile,
    ArchiveError,
    day_dir,
    file_name,
    tmp_path,
)


@dataclass
class Batch:
    """Rows from consecutive offsets of one topic partition, not yet written."""

    dataset: Dataset
    topic: str
    partition: int
    first: int | None = None  # first offset taken
    last: int = -1  # last offset taken
    records: int = 0  # offsets taken, skipped ones included
    rows: int = 0
    groups: dict[tuple[str, str], list[bytes]] = field(default_factory=dict)

    def take(self, offset: int, row: dict[str, Any] | None) -> None:
        """Add the row of ``offset`` (None: a record that is not archived, e.g. undecodable)."""
        if self.first is None:
            self.first = offset
        self.last = offset
        self.records += 1
        if row is None:
            return
        key = (row["market"], row["trading_day"])
        self.groups.setdefault(key, []).append(orjson.dumps(row))
        self.rows += 1


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file or subdirectory) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """``mkdir -p`` whose new directories survive a power cut (each parent fsynced)."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        fsync_dir(folder.parent)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class ArchiveWriter:
    """Writes batches under one archive root; one DuckDB connection, used by one thread at
    a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.scratch = root / SCRATCH_NAME
        make_dirs(self.scratch)
        import duckdb  # lazily: every capflow command imports this package

        self.con = duckdb.connect()
        self.con.execute("SET preserve_insertion_order = false")

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def write(self, batch: Batch, first: int, last: int) -> list[ArchivedFile]:
        """Write the batch's rows as the files of offsets ``first``..``last``; they are
        durable when this returns. No rows: no file (the range still counts as done)."""
        written = []
        for (market, day), lines in sorted(batch.groups.items()):
            folder = day_dir(self.root, batch.dataset.name, market, day)
            make_dirs(folder)
            final = folder / file_name(batch.topic, batch.partition, first, last)
            self._copy(batch.dataset, lines, final)
            written.append(
                ArchivedFile(
                    batch.dataset.name, market, day, batch.topic, batch.partition, first, last,
                    final,
                )
            )  # fmt: skip
        return written

    def _copy(self, dataset: Dataset, lines: list[bytes], final: Path) -> None:
        staging = self.scratch / "rows.jsonl"
        staging.write_bytes(b"\n".join(lines) + b"\n")
        tmp = tmp_path(final)
        columns = dataset.file_columns
        types = ", ".join(f"{_quote(c.name)}: {_quote(c.type)}" for c in columns)
        select = ", ".join(_ident(c.name) for c in columns)
        order = ", ".join(_ident(c) for c in ("security", dataset.time, "kafka_offset"))
        (count,) = self.con.execute(
            f"COPY (SELECT {select} FROM read_json({_quote(str(staging))}, "
            f"format = 'newline_delimited', columns = {{{types}}}) ORDER BY {order}) "
            f"TO {_quote(str(tmp))} (FORMAT parquet, COMPRESSION zstd)"
        ).fetchone() or (0,)
        if count != len(lines):
            tmp.unlink(missing_ok=True)
            raise ArchiveError(f"{final}: DuckDB wrote {count} rows of {len(lines)}")
        _fsync_file(tmp)
        os.replace(tmp, final)
        fsync_dir(final.parent)
