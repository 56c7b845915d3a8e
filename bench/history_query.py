"""``capflow history`` on a year of 300 securities: one security-day, a month, as a command.

Generates a trading year (every weekday of 2024) of snapshots for 300 securities (150 HK,
100 US, 50 SH), each polled every 10-300 s (its own interval, drawn once, with jitter)
during its market's regular hours, keyed to 3 topic partitions by security as on the
topic, and writes them with the archive's own rows and writer (``Dataset.row``,
``Batch``, ``ArchiveWriter``) as ``capflow archive --from-beginning`` catching up would:
one offset range per partition and day, so each day holds one file per market and
partition. A second archive holds one day written as a live archive with the default
flush (a range per --flush-seconds of event time per partition).

Measured: generation and write throughput, size, the full scan ``capflow archive`` does
at start, then queries in-process (``streams.archive.query.read_rows`` on a new DuckDB
connection each, so no query cache) and as a command (``capflow history ... --format
csv`` in a subprocess, Python start-up included), over random security-days. The page
cache is warm (the files were just written); nothing else is cached between queries.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import ROOT, fmt, header_lines, percentile, table, update_section
from streams.archive.datasets import SNAPSHOTS
from streams.archive.layout import scan
from streams.archive.query import DayRange, read_rows
from streams.archive.writer import ArchiveWriter, Batch
from streams.domain.market import MARKET_TABLE, MARKET_TZ
from streams.domain.validation import AMOUNT_FIELDS

TOPIC = "capflow.distribution.v1"
PARTITIONS = 3
MIX = {"HK": 150, "US": 100, "SH": 50}


def securities(mix: dict[str, int]) -> list[str]:
    codes = {"HK": "{:05d}", "US": "S{:04d}", "SH": "6{:05d}"}
    return [f"{m}.{codes[m].format(i + 1)}" for m, n in mix.items() for i in range(n)]


def weekdays(year: int) -> list[date]:
    day, out = date(year, 1, 1), []
    while day.year == year:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out


class Generator:
    """Snapshots of one day per security: cumulative amounts that only grow."""

    def __init__(self, names: list[str], seed: int = 11) -> None:
        self.rng = random.Random(seed)
        self.names = names
        self.interval = {n: self.rng.uniform(10.0, 300.0) for n in names}
        self.seq = 0

    def day(self, day: date, name: str) -> Iterator[dict[str, Any]]:
        market, code = name.split(".", 1)
        info = MARKET_TABLE[market]
        tz = ZoneInfo(MARKET_TZ[market])
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
        base = midnight.timestamp()
        day_text = day.isoformat()
        amounts = [0.0] * 8
        rng, step = self.rng, self.interval[name]
        for open_s, close_s in info.sessions:
            t = open_s + rng.uniform(0.0, step)
            while t < close_s:
                for i in range(8):
                    amounts[i] += rng.uniform(1e4, 2e5) * step / 60.0
                self.seq += 1
                s = int(t)  # local wall time: no DST change falls in trading hours
                yield {
                    "security": name, "market": market, "qot_market": info.qot_market,
                    "code": code, **dict(zip(AMOUNT_FIELDS, (round(a, 2) for a in amounts),
                                             strict=True)),
                    "update_time": f"{day_text} {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}",
                    "update_timestamp": float(base + int(t)), "trading_day": day_text,
                    "received_at_ms": int((base + t) * 1000) + 150,
                    "source": "bench://history", "poll_seq": self.seq,
                }  # fmt: skip
                t += step * rng.uniform(0.8, 1.2)


def partition_of(name: str) -> int:
    return zlib.crc32(name.encode()) % PARTITIONS


def write_day(
    writer: ArchiveWriter,
    gen: Generator,
    day: date,
    offsets: list[int],
    flush_every: float | None = None,
) -> tuple[int, int]:
    """One day of every security through the archive's writer; (rows, files).

    ``flush_every`` None: one offset range per partition (catch-up); else a range per
    that many seconds of event time, as a live archive with --flush-seconds writes.
    """
    per_part: list[list[dict[str, Any]]] = [[] for _ in range(PARTITIONS)]
    for name in gen.names:
        per_part[partition_of(name)].extend(gen.day(day, name))
    rows = files = 0
    for part, records in enumerate(per_part):
        records.sort(key=lambda r: r["update_timestamp"])  # topic order: as polled
        for chunk in _chunks(records, flush_every):
            batch = Batch(SNAPSHOTS, TOPIC, part)
            for record in chunk:
                offset = offsets[part]
                offsets[part] += 1
                row = SNAPSHOTS.row(record)
                row.update(kafka_partition=part, kafka_offset=offset, kafka_timestamp_ms=0)
                batch.take(offset, row)
            if batch.first is not None:
                files += len(writer.write(batch, batch.first, batch.last))
            rows += batch.rows
    return rows, files


def _chunks(records: list[dict[str, Any]], every: float | None) -> Iterator[list[dict[str, Any]]]:
    if every is None:
        yield records
        return
    chunk: list[dict[str, Any]] = []
    start = None
    for r in records:
        if start is not None and r["update_timestamp"] - start >= every:
            yield chunk
            chunk, start = [], None
        start = r["update_timestamp"] if start is None else start
        chunk.append(r)
    if chunk:
        yield chunk


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def query_times(root: Path, picks: list[tuple[str, DayRange]]) -> tuple[list[float], list[int]]:
    seconds, counts = [], []
    for name, days in picks:
        s, rows = timed(lambda n=name, d=days: list(read_rows(root, SNAPSHOTS, d, [n])))
        seconds.append(s)
        counts.append(len(rows))
    return seconds, counts


def command_times(root: Path, picks: list[tuple[str, DayRange]]) -> list[float]:
    out = []
    for name, days in picks:
        argv = [sys.executable, "-m", "streams.cli", "history", name, "--archive", str(root),
                "--from", str(days.first), "--to", str(days.last), "--format", "csv"]  # fmt: skip
        s, proc = timed(lambda a=argv: subprocess.run(a, capture_output=True, cwd=ROOT))
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.decode())
        out.append(s)
    return out


def startup_time(repeat: int) -> float:
    """`capflow --version`: the interpreter and capflow's imports, no query."""
    argv = [sys.executable, "-m", "streams.cli", "--version"]
    return min(timed(lambda: subprocess.run(argv, capture_output=True))[0] for _ in range(repeat))


def du(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.parquet"))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    names = securities(MIX)
    days = weekdays(2024)[: args.days]
    gen = Generator(names)
    rng = random.Random(5)
    r: dict[str, Any] = {"securities": len(names), "days": len(days)}
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        year, live = Path(tmp) / "year", Path(tmp) / "live"
        writer = ArchiveWriter(year)
        offsets = [0] * PARTITIONS
        t0 = time.perf_counter()
        rows = files = 0
        for n, day in enumerate(days, 1):
            day_rows, day_files = write_day(writer, gen, day, offsets)
            rows, files = rows + day_rows, files + day_files
            if n % 25 == 0:
                print(f"  {n}/{len(days)} days, {rows:,} rows", file=sys.stderr, flush=True)
        writer.close()
        r.update(rows=rows, files=files, write_s=time.perf_counter() - t0, bytes=du(year))
        r["scan_s"], found = timed(lambda: scan(year, ["snapshots"]))
        assert len(found.files) == files
        picks = [(rng.choice(names), rng.choice(days).isoformat()) for _ in range(args.queries)]
        one_day = [(n, DayRange(d, d)) for n, d in picks]
        r["day_s"], r["day_rows"] = query_times(year, one_day)
        months = [(n, DayRange(d[:8] + "01", d[:8] + "28")) for n, d in picks[: args.queries // 2]]
        r["month_s"], r["month_rows"] = query_times(year, months)
        r["cmd_s"] = command_times(year, one_day[: args.commands])
        r["startup_s"] = startup_time(3)
        writer = ArchiveWriter(live)
        live_day = days[-1]
        _, r["live_files"] = write_day(
            writer, gen, live_day, [0] * PARTITIONS, flush_every=float(args.flush_seconds)
        )
        writer.close()
        live_picks = [(rng.choice(names), DayRange(live_day.isoformat(), live_day.isoformat()))
                      for _ in range(args.queries)]  # fmt: skip
        r["live_s"], r["live_rows"] = query_times(live, live_picks)
        r["live_cmd_s"] = command_times(live, live_picks[: args.commands])
    return r


def report(r: dict[str, Any], args: argparse.Namespace) -> list[str]:
    def dist(values: list[float]) -> str:
        ms = [v * 1000 for v in values]
        return f"{fmt(percentile(ms, 50), 0)} / {fmt(percentile(ms, 95), 0)} / {fmt(max(ms), 0)}"

    rows = [
        ["one security-day, in-process (`read_rows`)", len(r["day_s"]), dist(r["day_s"]),
         fmt(sum(r["day_rows"]) / len(r["day_rows"]), 0)],
        ["one security, 4 weeks, in-process", len(r["month_s"]), dist(r["month_s"]),
         fmt(sum(r["month_rows"]) / len(r["month_rows"]), 0)],
        ["one security-day, `capflow history ... --format csv`", len(r["cmd_s"]),
         dist(r["cmd_s"]), "same"],
        [f"one security-day, live-written day ({r['live_files']:,} files), in-process",
         len(r["live_s"]), dist(r["live_s"]), fmt(sum(r["live_rows"]) / len(r["live_rows"]), 0)],
        ["the same as a command", len(r["live_cmd_s"]), dist(r["live_cmd_s"]), "same"],
    ]  # fmt: skip
    return [
        "### History queries on a year of 300 securities",
        "",
        *header_lines(),
        f"Setup: {r['securities']} securities (HK 150, US 100, SH 50), each polled every "
        f"10-300 s (its own interval, +-20 %) in its market's regular hours, on "
        f"{r['days']} weekdays of 2024: {r['rows']:,} snapshots in {r['files']:,} files "
        f"({r['bytes'] / 1e6:,.0f} MB, {r['bytes'] / r['rows']:.0f} bytes a row), written "
        f"through the archive's own rows and writer in {r['write_s']:.0f} s "
        f"({fmt(r['rows'] / r['write_s'], 0)} rows/s), one offset range per topic partition "
        f"and day (3 partitions) as a catch-up run writes. Scanning the whole archive as "
        f"`capflow archive` does at start (names + Parquet magic bytes of every file): "
        f"{r['scan_s']:.2f} s. A live-written day: {r['live_files']:,} files. Security-days "
        "drawn at random; a new DuckDB connection per query; page cache warm. "
        f"`capflow --version` alone (interpreter + imports): {r['startup_s'] * 1000:.0f} ms.",
        "",
        *table(["query", "runs", "ms p50 / p95 / max", "rows (mean)"], rows),
        "",
        "Interpretation: a query lists only the market's `trading_day=` directories it "
        "asks for and hands DuckDB exactly those files, so a security-day costs the same "
        "whatever the archive's length; the command's time is mostly Python start-up. A "
        f"day written live (a range per {args.flush_seconds} s per partition, the default "
        "--flush-seconds) has many more files than a catch-up day and reads slower: DuckDB "
        "opens every file of the day it reads.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=262, help="weekdays of 2024 (262: all)")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--commands", type=int, default=10)
    parser.add_argument(
        "--flush-seconds", type=int, default=300, help="the live day's flush (capflow archive's)"
    )
    args = parser.parse_args()
    started = datetime.now(UTC)
    result = measure(args)
    lines = report(result, args)
    print("\n".join(lines))
    print(f"(took {(datetime.now(UTC) - started).total_seconds():.0f} s)", file=sys.stderr)
    update_section("history_query", lines)


if __name__ == "__main__":
    main()
