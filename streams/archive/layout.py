"""Where the archive's files live, what they are called, and what else DIR may hold.

    DIR/<dataset>/market=<MARKET>/trading_day=<yyyy-MM-dd>/<topic>-p<partition>-<first>-<last>.parquet

A file holds the rows of one dataset, market and trading day that came from the
offsets ``first`` to ``last`` (inclusive) of one topic partition. The same range
always gets the same name, so writing a range again replaces its files instead of
adding rows. Files appear by atomic rename of ``.<name>.tmp``; DIR also holds the
archive's lock file and scratch directory, both hidden. Anything else in DIR, or a
``.parquet`` file that is not Parquet, is an :class:`ArchiveError` naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from streams.domain.market import MARKETS

LOCK_NAME = ".capflow-archive.lock"
SCRATCH_NAME = ".capflow-scratch"
TMP_SUFFIX = ".tmp"
_FILE = re.compile(
    r"^(?P<topic>[A-Za-z0-9._-]+)-p(?P<partition>\d+)-(?P<first>\d+)-(?P<last>\d+)\.parquet$"
)
_MAGIC = b"PAR1"


class ArchiveError(Exception):
    """DIR holds something that is not part of a capflow archive, or a damaged file."""


@dataclass(frozen=True, order=True)
class ArchivedFile:
    """One file of the archive, as its path names it."""

    dataset: str
    market: str
    trading_day: str
    topic: str
    partition: int
    first: int
    last: int
    path: Path


def file_name(topic: str, partition: int, first: int, last: int) -> str:
    return f"{topic}-p{partition}-{first}-{last}.parquet"


def day_dir(root: Path, dataset: str, market: str, trading_day: str) -> Path:
    return root / dataset / f"market={market}" / f"trading_day={trading_day}"


def tmp_path(final: Path) -> Path:
    """Where a file is written before it is renamed into place (hidden from readers)."""
    return final.with_name(f".{final.name}{TMP_SUFFIX}")


def _foreign(path: Path, expected: str) -> ArchiveError:
    return ArchiveError(
        f"{path} is not part of a capflow archive (expected {expected}); "
        "move it out of the archive directory"
    )


def check_parquet(path: Path) -> None:
    """Parquet's magic bytes at both ends; a truncated or foreign file fails here."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - 4))
            tail = fh.read(4)
    except OSError as exc:
        raise ArchiveError(f"{path} cannot be read: {exc}") from None
    if size < 12 or head != _MAGIC or tail != _MAGIC:
        raise ArchiveError(f"{path} is not a Parquet file (damaged or truncated); remove it")


def _subdirs(parent: Path, key: str, valid: Iterable[str] | None) -> Iterator[tuple[str, Path]]:
    """``key=value`` directories of ``parent``; anything else there is foreign."""
    allowed = None if valid is None else set(valid)
    with os.scandir(parent) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            name, _, value = entry.name.partition("=")
            valid_value = value in allowed if allowed is not None else _is_day(value)
            if not (entry.is_dir() and name == key and valid_value):
                raise _foreign(Path(entry.path), f"a directory {key}=...")
            yield value, Path(entry.path)


def _is_day(text: str) -> bool:
    try:
        return len(text) == 10 and date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def _is_leftover(name: str) -> bool:
    """``.<file name>.tmp``: a file a writer had not renamed into place yet."""
    if not (name.startswith(".") and name.endswith(TMP_SUFFIX)):
        return False
    return _FILE.match(name[1 : -len(TMP_SUFFIX)]) is not None


def day_files(
    folder: Path, dataset: str, market: str, trading_day: str, *, check: bool = True
) -> tuple[list[ArchivedFile], list[Path]]:
    """The files of one day directory, and leftover temporary files of a crashed writer."""
    files: list[ArchivedFile] = []
    leftovers: list[Path] = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            path = Path(entry.path)
            if _is_leftover(entry.name) and entry.is_file():
                leftovers.append(path)
                continue
            match = _FILE.match(entry.name)
            if match is None or not entry.is_file():
                raise _foreign(path, "<topic>-p<partition>-<first>-<last>.parquet")
            if check:
                check_parquet(path)
            files.append(
                ArchivedFile(
                    dataset, market, trading_day, match["topic"], int(match["partition"]),
                    int(match["first"]), int(match["last"]), path,
                )
            )  # fmt: skip
    return files, leftovers


def archived_days(root: Path, dataset: str, market: str) -> list[str]:
    """The trading days a dataset holds for a market, oldest first."""
    folder = root / dataset / f"market={market}"
    if not folder.is_dir():
        return []
    return [day for day, _ in _subdirs(folder, "trading_day", None)]


def archived_markets(root: Path, dataset: str) -> list[str]:
    folder = root / dataset
    if not folder.is_dir():
        return []
    return [market for market, _ in _subdirs(folder, "market", MARKETS)]


@dataclass
class Scan:
    """Everything in an archive directory: its files and a crashed writer's leftovers."""

    files: list[ArchivedFile]
    leftovers: list[Path]

    def last_range(self, topic: str, partition: int) -> tuple[int, int] | None:
        """The newest offset range archived for a topic partition: the one that may have
        been cut short by a crash (its files all carry the same range)."""
        ends = [f.last for f in self.files if f.topic == topic and f.partition == partition]
        if not ends:
            return None
        end = max(ends)
        first = max(
            f.first
            for f in self.files
            if f.topic == topic and f.partition == partition and f.last == end
        )
        return first, end


def scan(root: Path, datasets: Iterable[str]) -> Scan:
    """Walk the whole archive, checking every name and every file's Parquet magic bytes."""
    known = set(datasets)
    result = Scan([], [])
    if not root.exists():
        return result
    if not root.is_dir():
        raise ArchiveError(f"{root} is not a directory")
    with os.scandir(root) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name in (LOCK_NAME, SCRATCH_NAME):
                continue
            if entry.name not in known or not entry.is_dir():
                expected = "a dataset directory: " + ", ".join(sorted(known))
                raise _foreign(Path(entry.path), expected)
            for market, market_dir in _subdirs(Path(entry.path), "market", MARKETS):
                for day, folder in _subdirs(market_dir, "trading_day", None):
                    files, leftovers = day_files(folder, entry.name, market, day)
                    result.files += files
                    result.leftovers += leftovers
    return result
