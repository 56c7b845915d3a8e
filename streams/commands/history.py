"""``capflow history SEC...``: one security's snapshots (or flows, alerts) from the archive.

Reads the Parquet archive ``capflow archive`` writes, only the market and trading-day
directories asked for, and prints the rows in event-time order:

    capflow history HK.00700 --archive /data/capflow                  # the latest day
    capflow history HK.00700 --archive /data/capflow --from 2024-06-03 --to 2024-06-28
    capflow history HK.00700 --archive /data/capflow --flows --format csv > june.csv

--format table (readable), csv (every column, flattened as in the files) or json (one
record per line exactly as the topic carries it: snapshots as `capflow record` writes
them, so `capflow backtest` and `capflow replay` read the output). With neither --from
nor --to, the latest archived day; with one of them, up to the archive's first or last
day. No rows is a failure (exit 1) that says which days the archive holds.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from streams.archive.datasets import ALERTS, FLOWS, SNAPSHOTS, Dataset
from streams.archive.layout import ArchiveError, archived_days
from streams.archive.query import DayRange, read_rows
from streams.commands import CommandFailed, UsageError
from streams.domain.market import SecurityFormatError, market_currency, parse_security
from streams.domain.snapshot_record import record_from_fields
from streams.offline.recording import to_json_line
from streams.sinks.console import human_amount

Cell = Callable[[dict[str, Any]], str]


def _amount(name: str) -> Cell:
    return lambda row: "-" if row.get(name) is None else human_amount(row[name])


def _text(name: str) -> Cell:
    return lambda row: "" if row.get(name) is None else str(row[name])


def _currency(row: dict[str, Any]) -> str:
    """The amounts' currency: the record's, else (written before records named it) the
    market's."""
    return row.get("currency") or market_currency(row.get("market"), row.get("security")) or ""


_CLASSES = ("super", "big", "mid", "small")
# What --format table shows per dataset: (header, cell); csv and json show every column.
TABLES: dict[str, list[tuple[str, Cell]]] = {
    SNAPSHOTS.name: [
        ("update_time", _text("update_time")),
        *((f"in_{c}", _amount(f"capital_in_{c}")) for c in _CLASSES),
        *((f"out_{c}", _amount(f"capital_out_{c}")) for c in _CLASSES),
        ("currency", _currency),
    ],
    FLOWS.name: [
        ("event_time", _text("event_time")),
        ("regime", _text("regime")),
        ("L", _amount("large_net")),
        ("R_W", _amount("change_large")),
        ("threshold", _amount("threshold")),
        ("T", _amount("turnover")),
        ("snapshots", _text("snapshots_in_window")),
        ("currency", _currency),
    ],
    ALERTS.name: [
        ("event_time", _text("event_time")),
        ("direction", _text("direction")),
        ("R_W", _amount("r_w")),
        ("threshold", _amount("threshold")),
        ("L", _amount("large_net")),
        ("currency", _currency),
        ("id", _text("alert_id")),
    ],
}


def _day(flag: str, text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is not a date (yyyy-MM-dd)") from None


def add_archive_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--archive DIR --from D --to D``: shared by history, backtest and plot."""
    parser.add_argument(
        "--archive",
        required=required,
        metavar="DIR",
        help="read the Parquet archive written by `capflow archive DIR`",
    )
    parser.add_argument(
        "--from",
        dest="from_day",
        metavar="YYYY-MM-DD",
        help="first trading day to read from the archive (default: see --to)",
    )
    parser.add_argument(
        "--to",
        dest="to_day",
        metavar="YYYY-MM-DD",
        help="last trading day to read from the archive; with neither --from nor --to, "
        "the latest archived day",
    )


def day_range(args: argparse.Namespace) -> DayRange:
    """The --from/--to range; bad dates or from after to are usage errors."""
    first, last = _day("--from", args.from_day), _day("--to", args.to_day)
    if first and last and first > last:
        raise UsageError(f"--from {first} is after --to {last}")
    return DayRange(first, last)


def _dataset(args: argparse.Namespace) -> Dataset:
    if args.flows and args.alerts:
        raise UsageError("--flows and --alerts: pick one")
    return FLOWS if args.flows else ALERTS if args.alerts else SNAPSHOTS


def _securities(codes: list[str]) -> list[str]:
    try:
        return [str(parse_security(code)) for code in codes]
    except SecurityFormatError as exc:
        raise UsageError(str(exc)) from None


def _json_line(dataset: Dataset, row: dict[str, Any]) -> bytes:
    if dataset is SNAPSHOTS:
        return to_json_line(record_from_fields(row))  # what `capflow record` writes
    return orjson.dumps(dataset.record(row)) + b"\n"


def _print_table(dataset: Dataset, rows: list[dict[str, Any]], many: bool) -> None:
    spec = TABLES[dataset.name]
    if many:
        spec = [("security", _text("security")), *spec]
    cells = [[head for head, _ in spec]] + [[cell(row) for _, cell in spec] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(spec))]
    for line in cells:
        cells_out = zip(line[1:], widths[1:], strict=True)
        padded = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in cells_out]
        print("  ".join(padded).rstrip())


def _no_rows(root: Path, dataset: Dataset, securities: list[str], days: DayRange) -> str:
    held = []
    for market in sorted({parse_security(s).market for s in securities}):
        found = archived_days(root, dataset.name, market)
        span = f"{found[0]} to {found[-1]} ({len(found)} days)" if found else "no day"
        held.append(f"{market}: {span}")
    return (
        f"no {dataset.name} of {', '.join(securities)} {days.describe()} in {root} "
        f"(archived {dataset.name}: {'; '.join(held)})"
    )


def history(args: argparse.Namespace) -> int:
    dataset = _dataset(args)
    days = day_range(args)
    securities = _securities(args.security)
    root = Path(args.archive)
    rows = list(read_rows(root, dataset, days, securities))
    if not rows:
        raise CommandFailed(_no_rows(root, dataset, securities, days))
    if args.format == "json":
        sys.stdout.buffer.writelines(_json_line(dataset, row) for row in rows)
    elif args.format == "csv":
        names = list(dataset.column_names)
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([row.get(n) for n in names] for row in rows)
    else:
        _print_table(dataset, rows, len(securities) > 1)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return history(args)
    except ArchiveError as exc:
        raise CommandFailed(str(exc)) from exc
    except BrokenPipeError:  # `| head`
        return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "history",
        help="one security's snapshots, flows or alerts from the Parquet archive",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("security", nargs="+", metavar="SEC", help="e.g. HK.00700")
    add_archive_options(parser, required=True)
    parser.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="table (readable, default), csv (every column) or json (the topic's records)",
    )
    parser.add_argument("--flows", action="store_true", help="the flow records instead")
    parser.add_argument("--alerts", action="store_true", help="the alerts instead")
    parser.set_defaults(func=run)
