"""Read the archive back: the rows of some securities on the trading days asked for.

Partition pruning is done before DuckDB sees anything: only the ``trading_day=``
directories of the markets of the securities asked for, inside the range, are
listed, their file names checked, and exactly those files handed to
``read_parquet`` (``union_by_name``, so files written before a column was added
still read, with NULL in it). The rows come back as the dataset's flat rows, or as
the topic's records (``Dataset.record``), in event-time order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.archive.datasets import PARTITION_KEYS, Dataset
from streams.archive.layout import (
    ArchiveError,
    archived_days,
    archived_markets,
    day_dir,
    day_files,
    file_name,
)
from streams.domain.market import market_of

FETCH_ROWS = 10_000


@dataclass(frozen=True)
class DayRange:
    """Trading days ``first``..``last`` (inclusive, yyyy-MM-dd); None is open-ended.

    With neither bound, the latest archived day only.
    """

    first: str | None = None
    last: str | None = None

    def pick(self, days: Sequence[str]) -> list[str]:
        """The archived ``days`` (sorted) this range selects."""
        if self.first is None and self.last is None:
            return list(days[-1:])
        return [
            d
            for d in days
            if (self.first is None or d >= self.first) and (self.last is None or d <= self.last)
        ]

    def describe(self) -> str:
        if self.first is None and self.last is None:
            return "on the latest archived day"
        if self.first == self.last:
            return f"on {self.first}"
        return f"from {self.first or 'the first archived day'} to {self.last or 'the last'}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def files_for(root: Path, dataset: Dataset, markets: Iterable[str], days: DayRange) -> list[Path]:
    """The files of ``dataset`` for ``markets`` on the days ``days`` selects, names checked."""
    paths: list[Path] = []
    for market in sorted(set(markets)):
        for day in days.pick(archived_days(root, dataset.name, market)):
            folder = day_dir(root, dataset.name, market, day)
            files, _ = day_files(folder, dataset.name, market, day)
            paths += [f.path for f in files]
    return paths


def read_rows(
    root: Path,
    dataset: Dataset,
    days: DayRange,
    securities: Sequence[str] | None = None,
    order: Sequence[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Flat rows (partition keys included) of ``securities`` (None: all) in ``days``.

    Ordered by event time unless ``order`` names other columns. An archive directory
    that is missing, a foreign file or a damaged one raise ArchiveError.
    """
    if not (root / dataset.name).is_dir():
        if not root.is_dir():
            raise ArchiveError(f"{root} is not an archive directory (it does not exist)")
        return
    paths = files_for(root, dataset, _markets(root, dataset, securities), days)
    if not paths:
        return
    order = order or (dataset.time, "kafka_partition", "kafka_offset")
    yield from _select(paths, dataset, securities, order)


def _select(
    paths: list[Path],
    dataset: Dataset,
    securities: Sequence[str] | None,
    order: Sequence[str],
    below_offset: int | None = None,
) -> Iterator[dict[str, Any]]:
    hive_types = ", ".join(f"{_quote(k)}: 'VARCHAR'" for k in PARTITION_KEYS)
    sql = (
        "SELECT * FROM read_parquet($files, hive_partitioning = true, union_by_name = true, "
        f"hive_types = {{{hive_types}}}) WHERE true"
    )
    params: dict[str, Any] = {"files": [str(p) for p in paths]}
    if securities:
        sql += " AND security IN (SELECT unnest($securities))"
        params["securities"] = list(securities)
    if below_offset is not None:
        sql += " AND kafka_offset < $below"
        params["below"] = below_offset
    import duckdb  # lazily: every capflow command imports this module

    sql += " ORDER BY " + ", ".join(f'"{c}"' for c in order)
    con = duckdb.connect()
    try:
        cursor = con.execute(sql, params)
        names = [d[0] for d in cursor.description or []]
        while batch := cursor.fetchmany(FETCH_ROWS):
            for values in batch:
                yield dict(zip(names, values, strict=True))
    except duckdb.Error as exc:  # a damaged file: DuckDB's message names it
        raise ArchiveError(str(exc).splitlines()[0]) from None
    finally:
        con.close()


def range_rows(
    root: Path, dataset: Dataset, topic: str, partition: int, first: int, last: int, below: int
) -> list[dict[str, Any]]:
    """The archived rows of one offset range (every file with its name) below an offset,
    in offset order: what the archive alone still holds once the topic dropped them."""
    name = file_name(topic, partition, first, last)
    paths = sorted((root / dataset.name).glob(f"market=*/trading_day=*/{name}"))
    if not paths:
        return []
    return list(_select(paths, dataset, None, ("kafka_offset",), below_offset=below))


def count_rows(
    root: Path, dataset: Dataset, days: DayRange, securities: Sequence[str] | None = None
) -> int:
    """How many rows :func:`read_rows` gives (from the files' metadata and one column)."""
    if not (root / dataset.name).is_dir():
        return 0
    paths = files_for(root, dataset, _markets(root, dataset, securities), days)
    if not paths:
        return 0
    sql = "SELECT count(*) FROM read_parquet($files, union_by_name = true)"
    params: dict[str, Any] = {"files": [str(p) for p in paths]}
    if securities:
        sql += " WHERE security IN (SELECT unnest($securities))"
        params["securities"] = list(securities)
    import duckdb  # lazily: every capflow command imports this module

    con = duckdb.connect()
    try:
        row = con.execute(sql, params).fetchone()
    except duckdb.Error as exc:
        raise ArchiveError(str(exc).splitlines()[0]) from None
    finally:
        con.close()
    return int(row[0]) if row else 0


def _markets(root: Path, dataset: Dataset, securities: Sequence[str] | None) -> set[str]:
    """The markets to read: those of the securities asked for, or all archived ones."""
    if securities:
        return {market_of(s) for s in securities}
    return set(archived_markets(root, dataset.name))


def read_records(
    root: Path, dataset: Dataset, days: DayRange, securities: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The topic's records (as published) of ``securities`` in ``days``, event-time order."""
    return [dataset.record(row) for row in read_rows(root, dataset, days, securities)]
