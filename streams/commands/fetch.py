"""``capflow fetch CODE...``: one capital-distribution request per code, printed (debugging).

``--capital-flow`` asks for each code's minute series of the day instead (3211): one
line per minute with the cumulative net of each class and inFlow, as OpenD sent them.
Every reply is validated like the poller's (streams.domain.validation): an invalid one
is reported on stderr with the reason and makes the exit status 1; it is never printed
as data. An absent super amount prints as "absent" (``null`` with --json).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from typing import Any

import orjson

from streams.commands import CommandFailed, UsageError
from streams.domain.capital_flow import CapitalFlow
from streams.domain.market import SecurityFormatError, currency_of, parse_security
from streams.domain.snapshot_record import snapshot_to_proto
from streams.opend.client import OpenDClient, client_from_settings
from streams.opend.crypto import CryptoError
from streams.opend.errors import ConnectionLost, OpenDError, RequestTimeout
from streams.opend.snapshot import CapitalDistribution, InvalidSnapshot
from streams.settings import OpenDSettings
from streams.settings.flags import add_settings, from_args


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "fetch",
        help="query OpenD capital distribution (or flow) once per security and print it",
        description="One Qot_GetCapitalDistribution request per security (counts against "
        "OpenD's 30 per 30 s quota), or with --capital-flow one Qot_GetCapitalFlow request "
        "(its own quota, separate from capital distribution's). A reply that is not valid "
        "data is reported on stderr with the reason (exit status 1), never printed.",
    )
    parser.add_argument("codes", nargs="+", metavar="CODE", help="e.g. HK.00700 US.AAPL")
    parser.add_argument(
        "--capital-flow",
        action="store_true",
        help="today's minute series instead (3211): a header with the security, trading "
        "day and lastValidTime, then one line per minute with the cumulative net of "
        "super, big, mid and small orders and OpenD's inFlow since the open; the last "
        "minute may be in progress (marked, as of lastValidTime)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per line (with --capital-flow: the validated series, "
        "its rows in a list)",
    )
    add_settings(parser, OpenDSettings, only=["host", "port", "timeout", "rsa_key"])
    parser.set_defaults(func=run)


def format_readable(dist: CapitalDistribution) -> str:
    lines = [
        f"{dist.security}  updated {dist.update_time} ({dist.update_timestamp:.0f})"
        f"  amounts in {currency_of(dist.market)}"
    ]
    for cls in ("super", "big", "mid", "small"):
        cin = getattr(dist, f"capital_in_{cls}")
        cout = getattr(dist, f"capital_out_{cls}")
        if cin is None or cout is None:
            lines.append(f"  {cls:<6} in {_amount(cin)}  out {_amount(cout)}")
            continue
        lines.append(f"  {cls:<6} in {cin:>18,.2f}  out {cout:>18,.2f}  net {cin - cout:>+18,.2f}")
    return "\n".join(lines)


def _amount(value: float | None) -> str:
    return f"{'absent':>18}" if value is None else f"{value:>18,.2f}"


def as_json(dist: CapitalDistribution, source: str, seq: int) -> bytes:
    snap = snapshot_to_proto(dist, source, int(time.time() * 1000), seq)
    record: dict[str, Any] = {
        "security": snap.security,
        "market": snap.market,
        "qot_market": snap.qot_market,
        "code": snap.code,
        **dist.amounts(),  # None (null) for an absent super amount
        "update_time": snap.update_time,
        "update_timestamp": snap.update_timestamp,
        "trading_day": snap.trading_day,
        "received_at_ms": snap.received_at_ms,
        "source": snap.source,
        "currency": snap.currency,
    }
    return orjson.dumps(record)


def format_capital_flow(cf: CapitalFlow) -> str:
    """A header naming the series, then one line per minute (cumulative nets, inFlow)."""
    last = cf.last_valid_time or "none"
    lines = [
        f"{cf.security}  capital flow {cf.trading_day}  lastValidTime {last}  "
        f"({len(cf.rows)} minutes)",
        f"  {'time':<8} {'super':>18} {'big':>18} {'mid':>18} {'small':>18} {'inFlow':>18}",
    ]
    partial = cf.partial_row
    for row in cf.rows:
        nets = (row.super_in_flow, row.big_in_flow, row.mid_in_flow, row.sml_in_flow)
        line = f"  {row.time[11:]:<8} " + " ".join(f"{v:>+18,.2f}" for v in (*nets, row.in_flow))
        if row is partial:
            line += f"  in progress, as of {cf.last_valid_time[11:]}"
        lines.append(line)
    if not cf.rows:
        lines.append("  no minutes yet (before the open, or no trading today)")
    return "\n".join(lines)


def capital_flow_json(cf: CapitalFlow, source: str) -> bytes:
    """The validated series as one JSON object (null for what OpenD did not send)."""
    record = {
        **dataclasses.asdict(cf),
        "received_at_ms": int(time.time() * 1000),
        "source": source,
    }
    return orjson.dumps(record)


async def _one(client: OpenDClient, code: str, args: argparse.Namespace, seq: int) -> bytes:
    """One request, its reply as the line(s) to print."""
    if args.capital_flow:
        cf = await client.get_capital_flow(code)
        return (
            capital_flow_json(cf, client.source) if args.json else format_capital_flow(cf).encode()
        )
    dist = await client.get_capital_distribution(code)
    return as_json(dist, client.source, seq) if args.json else format_readable(dist).encode()


async def _fetch(args: argparse.Namespace) -> int:
    status = 0
    try:
        client = client_from_settings(from_args(args, OpenDSettings))
    except CryptoError as exc:
        raise UsageError(f"--opend-rsa-key: {exc}") from exc
    try:
        await client.connect()
    except (OSError, TimeoutError, OpenDError) as exc:
        raise CommandFailed(f"cannot connect to {client.source}: {exc}") from exc
    try:
        for seq, code in enumerate(args.codes, 1):
            try:
                out = await _one(client, code, args, seq)
            except (OpenDError, SecurityFormatError, RequestTimeout) as exc:
                print(f"{code}: {exc}", file=sys.stderr)
                status = 1
                continue
            except InvalidSnapshot as exc:
                print(f"{code}: invalid reply: {exc.detail}", file=sys.stderr)
                status = 1
                continue
            except ConnectionLost as exc:
                print(f"{code}: {exc}", file=sys.stderr)
                return 1
            sys.stdout.buffer.write(out + b"\n")
            sys.stdout.flush()
    finally:
        await client.close()
    return status


def run(args: argparse.Namespace) -> int:
    for code in args.codes:
        try:
            parse_security(code)
        except SecurityFormatError as exc:
            raise UsageError(str(exc)) from exc
    return asyncio.run(_fetch(args))
