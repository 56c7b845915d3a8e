"""Budget use and per-security staleness of the poller at the real OpenD limit (30 / 30 s).

Drives the worker's own poller code in one process, without Faust: ``Poller`` with
``OpenDClient``, ``AckedPublisher`` (real Kafka topic) and a ``SlidingWindowLimiter``
built exactly as ``Pipeline.run_poller`` builds it (window + window / 60 margin, spacing
window / limit), against the in-process simulator enforcing the same 30 / 30 s.

Every second it samples, per security, the age of the latest snapshot received.
Run with ``--securities 30 --duration 90`` and ``--securities 300 --duration 340``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.common import (
    DEFAULT_BOOTSTRAP,
    create_topics,
    delete_topics,
    fmt,
    header_lines,
    percentile,
    run_prefix,
    table,
    update_section,
)
from streams.kafka.sending import AckedPublisher
from streams.opend.client import OpenDClient
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.opend_sim.server import OpenDSimulator
from streams.polling.poller import Poller
from streams.timing.ratelimit import SlidingWindowLimiter, limit_margin


def max_in_window(stamps: list[float], window: float) -> int:
    """Most events inside any half-open interval of ``window`` seconds."""
    best, j = 0, 0
    for i, s in enumerate(stamps):
        while s - stamps[j] >= window:
            j += 1
        best = max(best, i - j + 1)
    return best


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement; returns the numbers."""
    prefix = run_prefix(f"poll{args.securities}")
    topic = f"{prefix}.distribution"
    await create_topics(args.bootstrap, [topic])
    watchlist = [f"HK.{i:05d}" for i in range(1, args.securities + 1)]
    limit, window = args.limit, args.window
    sim = OpenDSimulator(
        MarketModel(None, seed=1),
        SimClock(time.time(), 1.0),
        rate_limit_requests=limit,
        rate_limit_window=window,
    )
    served: list[float] = []  # monotonic time of each request the simulator admitted
    distribution = sim.market.distribution

    def recorded(security: str, t: float) -> Any:
        served.append(time.monotonic())
        return distribution(security, t)

    sim.market.distribution = recorded  # type: ignore[method-assign]
    await sim.start()
    client = OpenDClient("127.0.0.1", sim.port)
    publisher = AckedPublisher(topic, {"bootstrap_servers": args.bootstrap})
    await publisher.start()
    eff_window = window + limit_margin(window)  # exactly what the worker does
    limiter = SlidingWindowLimiter(limit, eff_window, spacing=eff_window / limit)
    poller = Poller(client, publisher.publish, watchlist, limiter, ignore_market_hours=True)

    async def loop() -> None:
        while True:
            await poller.step()

    samples: list[float] = []  # ages, once every security has a snapshot
    warm_samples: list[float] = []  # ages incl. the first cycle (never polled = age since start)
    full_cycle_at: float | None = None
    t0 = time.time()
    task = asyncio.create_task(loop())
    try:
        while time.time() - t0 < args.duration:
            await asyncio.sleep(1.0)
            now = time.time()
            last = poller.stats.last_received
            ages = [now - last.get(s, t0) for s in watchlist]
            warm_samples.extend(ages)
            if full_cycle_at is None and len(last) == len(watchlist):
                full_cycle_at = now - t0
            elif full_cycle_at is not None:
                samples.extend(ages)
        elapsed = time.time() - t0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await publisher.stop()
        await client.close()
        await sim.stop()
        await delete_topics(args.bootstrap, [topic])
    rejected = sum(sum(c.errors.values()) for c in sim.connections.values())
    theoretical = limit / window * elapsed
    return {
        "securities": args.securities,
        "duration_s": elapsed,
        "requests": poller.stats.requests,
        "ok": poller.stats.ok,
        "served": len(served),
        "published": publisher.published,
        "rate_limited_poller": poller.stats.rate_limited,
        "error_replies_sim": rejected,
        "theoretical_max": theoretical,
        "budget_pct": 100.0 * len(served) / theoretical,
        "max_in_window": max_in_window(served, window),
        "full_cycle_s": full_cycle_at,
        "steady": samples,
        "warm": warm_samples,
        "expected_age_s": len(watchlist) * eff_window / limit,
        "limit": limit,
        "window": window,
        "margin": limit_margin(window),
    }


def report(r: dict[str, Any]) -> list[str]:
    """Markdown lines of one run (also printed)."""
    n = r["securities"]
    steady, warm = r["steady"], r["warm"]
    cycle = "not reached" if r["full_cycle_s"] is None else f"{r['full_cycle_s']:.0f} s"
    lines = [
        f"### Poll budget and staleness, {n} securities",
        "",
        *header_lines(),
        "Setup: `Poller` + `AckedPublisher` + `OpenDClient` driven directly in one "
        "process (the worker's poller code, no Faust worker), limiter built as "
        f"`Pipeline.run_poller` does ({r['limit']} per {r['window']:g} s + "
        f"{r['margin']:g} s margin, spacing window/limit), in-process simulator enforcing "
        f"{r['limit']} per {r['window']:g} s (sliding window), watchlist HK.00001.."
        f"HK.{n:05d} (default market model), snapshots published to a real Kafka topic. "
        "Staleness = age of each security's latest received snapshot, sampled every second.",
        "",
        *table(
            ["measure", "value"],
            [
                ["measured interval", f"{r['duration_s']:.1f} s"],
                ["requests admitted by the simulator", r["served"]],
                [
                    "theoretical maximum (limit / window x interval)",
                    fmt(r["theoretical_max"], 1),
                ],
                ["budget used", f"{r['budget_pct']:.1f} %"],
                ["most requests in any 30 s window (simulator side)", r["max_in_window"]],
                ["rate-limit replies to the poller", r["rate_limited_poller"]],
                ["error replies counted by the simulator", r["error_replies_sim"]],
                ["snapshots published to Kafka", r["published"]],
                ["first full cycle of the watchlist after", cycle],
                [
                    "staleness p50 / p99 / max, after the first full cycle",
                    f"{fmt(percentile(steady, 50))} / {fmt(percentile(steady, 99))} / "
                    f"{fmt(max(steady) if steady else float('nan'))} s "
                    f"({len(steady)} samples)",
                ],
                [
                    "staleness p50 / p99 / max, whole run (unpolled = age since start)",
                    f"{fmt(percentile(warm, 50))} / {fmt(percentile(warm, 99))} / "
                    f"{fmt(max(warm))} s ({len(warm)} samples)",
                ],
                [
                    "N x (window + margin) / limit",
                    f"{r['expected_age_s']:.1f} s",
                ],
            ],
        ),
        "",
        f"Interpretation: the poller spends {r['budget_pct']:.1f} % of the nominal budget "
        f"(its sustained ceiling is {100 * r['window'] / (r['window'] + r['margin']):.1f} % "
        "because of the safety margin of window / 60, plus the first request at the start of the "
        "interval) without a single rate-limit reply; a security "
        "is re-polled every N / rate seconds, so the worst staleness approaches "
        f"N x {(r['window'] + r['margin']) / r['limit']:.3f} s = "
        f"{r['expected_age_s']:.0f} s and the median is about half of that.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--securities", type=int, default=30)
    parser.add_argument("--duration", type=float, default=90.0, help="seconds")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    lines = report(result)
    print("\n".join(lines))
    update_section(f"poll_budget-{args.securities}", lines)


if __name__ == "__main__":
    main()
