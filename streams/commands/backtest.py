"""``capflow backtest FILE``: alerts a recorded day would have given, per parameter set.

Reads the JSON lines of ``capflow record`` (or, with ``--archive DIR --from --to``, the
snapshots of the Parquet archive ``capflow archive`` writes) and runs the worker's flow
and reversal logic over them without Kafka. Each detector option takes a comma-separated
list; every combination is one parameter set and one row of the output:

    capflow backtest day.jsonl --theta-rel 0.05,0.1,0.2 --confirm 1,2,3 --window 120,300
    capflow backtest --archive /data/capflow --from 2024-06-03 --to 2024-06-28 --confirm 1,2

A row gives the alerts, alerts per security per trading day, and the median event time
between two alerts of the same security on the same day. ``--alerts-out`` writes the
alerts of a single parameter set as JSON lines, byte for byte what a worker with the
same settings publishes for the same input; ``--plot`` draws the rows as a PNG.
Options not given take the worker's defaults (CAPFLOW_* variables included);
``--thresholds-file`` layers its per-market and per-security overrides on every set,
as it does in the worker. Definitions: docs/definitions.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

from streams.archive.layout import ArchiveError
from streams.commands import CommandFailed, UsageError
from streams.commands.history import add_archive_options, day_range
from streams.offline.backtest import (
    BacktestError,
    ParameterError,
    Progress,
    Recording,
    Result,
    load_archive,
    load_recording,
    parameter_grid,
    render_sweep,
    write_alerts,
)
from streams.offline.backtest import (
    run as run_sets,
)
from streams.offline.recording import RecordingError
from streams.processing.thresholds import PARAM_KEYS
from streams.settings import FlowSettings
from streams.settings.declare import Declared, declarations
from streams.settings.flags import add_settings

# The detector settings a comma-separated list sweeps, with the worker's flags and
# variables; the detector's parameters check each value's range.
_SWEPT: tuple[Declared, ...] = tuple(d for d in declarations(FlowSettings) if d.field in PARAM_KEYS)


def _values(decl: Declared, text: str) -> list[Any]:
    kind = type(decl.default)  # int or float
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ParameterError(f"{decl.flag}: {text!r} is not a list of numbers") from None
    if not values:
        raise ParameterError(f"{decl.flag}: no value given")
    return values


def _progress(what: str, quiet: bool) -> Progress | None:
    """A progress line on stderr, at most once a second, for runs longer than a moment."""
    if quiet:
        return None
    started = time.monotonic()
    shown = [started]

    def note(done: int, total: int) -> None:
        now = time.monotonic()
        final = done >= total
        if now - shown[0] < 1.0 and not (final and now - started > 1.0):
            return
        shown[0] = now
        pct = 100.0 * done / total if total else 100.0
        end = "\n" if final else ""
        print(f"\r{what}: {pct:.0f}%", end=end, file=sys.stderr, flush=True)

    return note


def _table(results: Sequence[Result]) -> list[str]:
    head = ["window", "theta_abs", "theta_rel", "confirm", "cooldown", "alerts", "per sec-day"]
    head.append("median gap")
    rows = [head]
    for r in results:
        p = r.parameters.defaults
        gap = r.median_gap_s
        rows.append(
            [
                f"{p.window:g}",
                f"{p.theta_abs:g}",
                f"{p.theta_rel:g}",
                str(p.confirm),
                f"{p.cooldown:g}",
                str(len(r.alerts)),
                f"{r.alerts_per_security_day:.3f}",
                "-" if gap is None else f"{gap:.0f} s",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]


def _load(args: argparse.Namespace) -> Recording:
    """The recording file, or the archive's days: one of them, not both."""
    securities = frozenset(args.security or ())
    if args.archive:
        if args.file:
            raise UsageError("give a recording FILE or --archive DIR, not both")
        days = day_range(args)
        progress = _progress(f"reading {args.archive}", args.quiet)
        return load_archive(args.archive, days, progress, securities)
    if not args.file:
        raise UsageError("give a recording FILE (from `capflow record`) or --archive DIR")
    if args.from_day or args.to_day:
        raise UsageError("--from and --to read the archive: add --archive DIR")
    return load_recording(args.file, _progress(f"reading {args.file}", args.quiet), securities)


def backtest(args: argparse.Namespace) -> int:
    values = {d.field: _values(d, getattr(args, d.name)) for d in _SWEPT}
    sets = parameter_grid(values, thresholds_file=args.thresholds_file or None)
    if args.alerts_out and len(sets) != 1:
        raise ParameterError(
            f"--alerts-out needs exactly one parameter set, these options give {len(sets)}"
        )
    started = time.monotonic()
    recording = _load(args)
    for line in recording.rejected[:5]:
        print(f"capflow backtest: skipped (the worker dead-letters it) {line}", file=sys.stderr)
    if len(recording.rejected) > 5:
        print(
            f"capflow backtest: ... {len(recording.rejected) - 5} more records skipped",
            file=sys.stderr,
        )
    results = run_sets(recording, sets, _progress(f"running {len(sets)} set(s)", args.quiet))
    elapsed = time.monotonic() - started
    n = len(recording.snapshots)
    if args.json:
        for result in results:
            print(orjson.dumps(result.row()).decode())
    else:
        print(
            f"{n} snapshots, {recording.securities} securities, {recording.security_days} "
            f"security-days, {len(sets)} parameter set(s) in {elapsed:.1f} s"
        )
        print("\n".join(_table(results)))
    if args.alerts_out:
        count = write_alerts(results[0], args.alerts_out)
        print(f"wrote {count} alert(s) to {args.alerts_out}", file=sys.stderr)
    if args.plot:
        path = render_sweep(results, args.plot)
        print(f"wrote {path}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return backtest(args)
    except ParameterError as exc:
        raise UsageError(str(exc)) from exc
    except (BacktestError, RecordingError, ArchiveError, OSError) as exc:
        raise CommandFailed(str(exc)) from exc
    except RuntimeError as exc:  # matplotlib missing for --plot
        raise UsageError(str(exc)) from exc


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "backtest",
        help="run recorded snapshots through the flow and alert logic for many parameter sets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file", nargs="?", help="JSON lines written by `capflow record` (or --archive DIR)"
    )
    add_archive_options(parser, required=False)
    parser.add_argument(
        "--security",
        action="append",
        metavar="SEC",
        help="only this security, e.g. HK.00700 (repeatable; default: all)",
    )
    for decl in _SWEPT:
        parser.add_argument(
            decl.flag,
            dest=decl.name,
            default=decl.shown(decl.from_environment()),
            metavar="V[,V...]",
            help=f"{decl.help}; a comma-separated list sweeps it (env {decl.env}, "
            "default %(default)s)",
        )
    add_settings(parser, FlowSettings, only=["thresholds_file"])  # layered on every set
    parser.add_argument(
        "--alerts-out",
        metavar="JSONL",
        help="write the alerts (exact capflow.alerts.v1 payloads) of the single parameter set",
    )
    parser.add_argument("--plot", metavar="PNG", help="draw alerts per security-day per set")
    parser.add_argument("--json", action="store_true", help="one JSON object per set on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(func=run)
