"""``capflow fetch CODE...``: one capital-distribution request per code, printed (debugging).

Every reply is validated like the poller's (streams.domain.validation): an invalid one
is reported on stderr with the reason and makes the exit status 1; it is never printed
as data. An absent super amount prints as "absent" (``null`` with --json).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson

from streams.commands import CommandFailed, UsageError
from streams.domain.market import currency_of
from streams.domain.snapshot_record import snapshot_to_proto
from streams.opend.client import client_from_settings
from streams.opend.crypto import CryptoError
from streams.opend.errors import ConnectionLost, OpenDError, RequestTimeout
from streams.opend.security import SecurityFormatError, parse_security
from streams.opend.snapshot import CapitalDistribution, InvalidSnapshot
from streams.settings import OpenDSettings
from streams.settings.flags import add_settings, from_args


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "fetch",
        help="query OpenD capital distribution once per security and print it",
        description="One Qot_GetCapitalDistribution request per security (counts against "
        "OpenD's 30 per 30 s quota).",
    )
    parser.add_argument("codes", nargs="+", metavar="CODE", help="e.g. HK.00700 US.AAPL")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
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
                dist = await client.get_capital_distribution(code)
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
            if args.json:
                sys.stdout.buffer.write(as_json(dist, client.source, seq) + b"\n")
                sys.stdout.flush()
            else:
                print(format_readable(dist), flush=True)
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
