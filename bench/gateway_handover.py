"""Gateway handover: how long a gateway goes unpolled when its owner dies, joins or stops.

Two simulated gateways (in-process, one market and clock, each with its own budget)
and real ``capflow worker`` processes on a real broker:

1. two workers start; each ends up owning one gateway;
2. kill -9 the owner of g1: time until the survivor's first request to g1
   (expected: session timeout + one window of grace);
3. a third worker joins: the longest pause per gateway during that rebalance;
4. SIGTERM the worker owning g1: time to exit, requests it sent after the signal,
   and time until another worker's first request to g1 (expected: one window).

The simulators count every request; the most any window held is reported per gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import time
import urllib.request
from typing import Any

from bench.common import (
    DEFAULT_BOOTSTRAP,
    ROOT,
    Topics,
    Worker,
    create_topics,
    delete_topics,
    header_lines,
    run_prefix,
    start_worker,
    table,
    update_section,
)
from streams.devtools import RequestLog, stop_all
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.opend_sim.server import OpenDSimulator

WATCHLIST = [f"HK.{i:05d}" for i in range(1, 9)]


def longest_gap(log: RequestLog, start: float, end: float) -> float:
    """The longest stretch between ``start`` and ``end`` without a request."""
    times = [start] + [t for t in log.times if start < t < end] + [end]
    return max(b - a for a, b in itertools.pairwise(times))


def owned(w: Worker) -> set[str]:
    try:
        url = f"http://127.0.0.1:{w.web_port}/status/"
        with urllib.request.urlopen(url, timeout=2) as r:
            return {g["gateway"] for g in json.loads(r.read())["gateways"] if g["owned"]}
    except (OSError, ValueError, KeyError):
        return set()


async def until(predicate: Any, timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    market, clock = MarketModel(None, 3), SimClock(speed=1.0)
    sims = [
        OpenDSimulator(market, clock, rate_limit_requests=args.limit, rate_limit_window=args.window)
        for _ in range(2)
    ]
    for sim in sims:
        await sim.start()
    reqs = {"g1": RequestLog(sims[0]), "g2": RequestLog(sims[1])}
    prefix = run_prefix("handover")
    topics = Topics(prefix)
    await create_topics(args.bootstrap, topics.all())
    workdir = ROOT / ".capflow" / "bench" / prefix
    extra = [
        "--opend", f"127.0.0.1:{sims[0].port}=g1,127.0.0.1:{sims[1].port}=g2",
        "--rate-limit-requests", str(args.limit), "--rate-limit-window", str(args.window),
        "--session-timeout", str(args.session_timeout), "--gateway-topic", f"{prefix}.gateways",
    ]  # fmt: skip

    def worker(name: str) -> Worker:
        return start_worker(args.bootstrap, topics, prefix, workdir, name=name,
                            watchlist=WATCHLIST, extra=extra)  # fmt: skip

    workers = [worker("w1"), worker("w2")]
    out: dict[str, Any] = {}
    try:
        a, b = workers
        await until(lambda: len(owned(a)) == 1 and len(owned(b)) == 1, 180, "one gateway each")
        await until(lambda: all(r.requests for r in reqs.values()), 60, "both gateways polled")
        await asyncio.sleep(2)
        victim, survivor = (a, b) if "g1" in owned(a) else (b, a)
        killed = time.monotonic()
        victim.kill()
        took = await until(
            lambda: reqs["g1"].first_by(survivor.proc.pid, killed) is not None, 180, "takeover"
        )
        out["kill9_takeover_s"] = (reqs["g1"].first_by(survivor.proc.pid, killed) or took) - killed
        await asyncio.sleep(2)

        joiner = worker("w3")
        workers.append(joiner)
        joined_at = time.monotonic()
        await until(lambda: len(owned(joiner)) == 1, 180, "the third worker to own a gateway")
        await asyncio.sleep(args.window + 3)
        settled = time.monotonic()
        out["join_pause_s"] = {g: longest_gap(r, joined_at, settled) for g, r in reqs.items()}

        leaving = survivor if "g1" in owned(survivor) else joiner
        stays = joiner if leaving is survivor else survivor
        termed = time.monotonic()
        leaving.send(signal.SIGTERM)
        out["sigterm_exit_code"] = await leaving.wait_exit(60)
        out["sigterm_exit_s"] = time.monotonic() - termed
        out["requests_after_sigterm"] = sum(
            len(r.by(leaving.proc.pid, termed)) for r in reqs.values()
        )
        await until(lambda: reqs["g1"].first_by(stays.proc.pid, termed) is not None, 180, "g1")
        out["sigterm_takeover_s"] = (reqs["g1"].first_by(stays.proc.pid, termed) or 0) - termed
        await asyncio.sleep(2)
    finally:
        stop_all(workers)
        for sim in sims:
            await sim.stop()
        await delete_topics(args.bootstrap, [*topics.all(), f"{prefix}.gateways"])
    out["max_in_window"] = {g: r.max_in_window(args.window) for g, r in reqs.items()}
    out["refused"] = {g: r.refused for g, r in reqs.items()}
    out["requests"] = {g: len(r.requests) for g, r in reqs.items()}
    return out


def report(args: argparse.Namespace, r: dict[str, Any]) -> list[str]:
    grace = args.window + 0.5
    return [
        "### Gateway handover (two gateways, workers dying, joining, stopping)",
        "",
        *header_lines(),
        f"Setup: two in-process simulated gateways, each enforcing {args.limit} requests per "
        f"{args.window:g} s; `capflow worker` processes with the same limit, "
        f"`--session-timeout {args.session_timeout:g}`, handover grace on (one window + 0.5 s "
        f"margin = {grace:g} s); {len(WATCHLIST)} securities spread over the two gateways.",
        "",
        *table(
            ["event", "measured", "expected from the settings"],
            [
                [
                    "kill -9 of g1's owner -> survivor's first request to g1",
                    f"{r['kill9_takeover_s']:.1f} s",
                    f"<= session timeout + grace = {args.session_timeout + grace:g} s",
                ],
                [
                    "third worker joins -> longest pause of g1 / g2",
                    f"{r['join_pause_s']['g1']:.1f} / {r['join_pause_s']['g2']:.1f} s",
                    f"the gateway that moves: one grace ({grace:g} s); the one that "
                    "stays: the rebalance only",
                ],
                [
                    "SIGTERM of g1's owner -> process exit (exit code)",
                    f"{r['sigterm_exit_s']:.1f} s ({r['sigterm_exit_code']})",
                    "bounded by --shutdown-timeout (15 s)",
                ],
                [
                    "requests sent by the stopping worker after SIGTERM",
                    r["requests_after_sigterm"],
                    "0",
                ],
                [
                    "SIGTERM -> the other worker's first request to g1",
                    f"{r['sigterm_takeover_s']:.1f} s",
                    f"about one grace ({grace:g} s)",
                ],
                [
                    f"most requests in any {args.window:g} s window, g1 / g2 (simulator)",
                    f"{r['max_in_window']['g1']} / {r['max_in_window']['g2']}",
                    f"<= {args.limit}",
                ],
                [
                    "refused (over-limit) requests, g1 / g2",
                    f"{r['refused']['g1']} / {r['refused']['g2']}",
                    "0",
                ],
                [
                    "requests served, g1 / g2",
                    f"{r['requests']['g1']} / {r['requests']['g2']}",
                    "",
                ],
            ],
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--session-timeout", type=float, default=10.0)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    lines = report(args, result)
    print("\n".join(lines))
    if not args.no_write:
        update_section("gateway_handover", lines)


if __name__ == "__main__":
    main()
