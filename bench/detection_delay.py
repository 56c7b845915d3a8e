"""Detection delay of scripted reversals: round-robin against adaptive polling, same run.

For each watchlist size N the simulator runs a generated scenario: a subset of the
securities reverses its large-order flow at known simulated times (two flips each),
the rest is noise only (a steady one-sided trend or a quiet near-zero net, turnover
noise on all; their scripted large net never changes sign, so any alert on them is a
false one). Simulated time runs ``--speed`` times faster than wall time and the budget
is scaled with it on both sides (simulator and worker: 30 requests per 30 / speed
wall seconds), so in simulated time it is exactly 30 requests per 30 s per gateway.

One real ``capflow worker`` per schedule (subprocess, its own topics and app id) polls
its own in-process simulator; both schedules run at the same time on the same
scenario. Measured per schedule, in simulated seconds:

- detection delay = alert event time - scripted flip time (first alert of the flip's
  direction on that security after the flip and before its next flip); a flip with
  no such alert is missed;
- alerts on noise-only securities;
- staleness: age of each security's latest snapshot, sampled every simulated second
  once every security has been polled; the largest gap between two polls;
- requests per gateway (counted by the simulator) and the most that arrived in any
  30 s window, rate-limit replies.

K (gateways per worker, ``--gateways``) is a parameter: K simulated gateways share
one market model and clock, each with its own budget, and the worker gets them all
with ``--opend`` (the gateway pool: one poller and scheduler per gateway).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiokafka import AIOKafkaConsumer

from bench.common import (
    DEFAULT_BOOTSTRAP,
    ROOT,
    Topics,
    Worker,
    create_topics,
    delete_topics,
    fmt,
    header_lines,
    percentile,
    prefixed_topics,
    read_to_end,
    run_prefix,
    start_worker,
    table,
    update_section,
)
from bench.poll_budget import max_in_window
from streams.domain.market import from_wire
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.opend_sim.scenario import Reversal, Scenario, parse_scenario, reversal_times
from streams.opend_sim.server import OpenDSimulator
from streams.polling import spread

START = datetime(2024, 6, 3, 9, 30, tzinfo=ZoneInfo("Asia/Hong_Kong"))  # a Monday open
LIMIT, WINDOW = 30, 30.0  # OpenD's budget, simulated seconds
SCHEDULES = ("round-robin", "adaptive")
COMPARES = ("schedule", "history")


# -- scenario -------------------------------------------------------------------------


def two_flips(rng: random.Random) -> list[float]:
    """The default flips of a reversing security: 600-1200 s after the open, and a
    further 1500-1800 s later."""
    first = rng.uniform(600, 1200)
    return [first, first + rng.uniform(1500, 1800)]


def build_scenario(
    n: int,
    reversing: int,
    seed: int,
    flips: Callable[[random.Random], list[float]] = two_flips,
    name: str = "bench-detection",
) -> tuple[Scenario, float]:
    """N securities, ``reversing`` of them flip at the times ``flips`` draws (seconds
    after the open, ascending; default twice); returns it and its length (sim s)."""
    rng = random.Random(seed)
    specs: dict[str, Any] = {}
    last_flip = 0.0
    for i in range(n):
        sec = f"HK.{i + 1:05d}"
        noise = round(rng.uniform(0.1, 0.4), 2)
        if i < reversing:
            sign = rng.choice((1, -1))
            rate = rng.uniform(80_000, 150_000)
            segments = [{"at": 0, "large_net_rate": sign * rate}]
            for k, at in enumerate(flips(rng), start=1):
                segments.append({"at": round(at, 1), "large_net_rate": (-1) ** k * sign * rate})
                last_flip = max(last_flip, at)
        elif i % 2 == 0:
            # Steady trend: one sign all day, the strength changing every few minutes.
            sign = rng.choice((1, -1))
            rate = rng.uniform(30_000, 150_000)
            segments = [{"at": 0, "large_net_rate": sign * rate}]
            at = 0.0
            while at < 4000:
                at += rng.uniform(300, 900)
                segments.append(
                    {"at": round(at, 1), "large_net_rate": sign * rate * rng.uniform(0.3, 1.5)}
                )
        else:
            # Quiet: a large net far below theta (NEUTRAL all day).
            segments = [{"at": 0, "large_net_rate": rng.choice((1, -1)) * rng.uniform(0, 10_000)}]
        specs[sec] = {"noise": noise, "segments": segments}
    scenario = parse_scenario(
        {"name": f"{name}-{n}", "start": START.isoformat(), "securities": specs}
    )
    return scenario, last_flip + 1100.0


# -- one schedule ---------------------------------------------------------------------


@dataclass
class Gateway:
    """One simulated OpenD with its own budgets and its own request log."""

    sim: OpenDSimulator
    arrivals: list[float] = field(default_factory=list)  # sim time of every 3212 request
    served: list[tuple[float, str]] = field(default_factory=list)  # admitted: (sim t, sec)
    flow_arrivals: list[float] = field(default_factory=list)  # sim time of every 3211 request


def make_gateways(scenario: Scenario, speed: float, k: int) -> list[Gateway]:
    """K simulated gateways of one run: one market model and one clock (as
    ``capflow opend-sim --gateways K``), each with its own budgets (capital distribution
    and capital flow, both scaled with ``speed``) and request log."""
    market = MarketModel(scenario, seed=11)
    clock = SimClock(scenario.start, 0.0)
    gateways = []
    for _ in range(k):
        sim = OpenDSimulator(
            market,
            clock,
            rate_limit_requests=LIMIT,
            rate_limit_window=WINDOW / speed,
            flow_rate_limit_requests=LIMIT,
            flow_rate_limit_window=WINDOW / speed,
        )
        # The clock starts at the first request any gateway gets (a later one re-anchors
        # it at its current time and the same speed: no jump).
        sim.speed_on_first_request = speed
        gateways.append(_recording(sim))
    return gateways


def budget_flags(speed: float) -> list[str]:
    """Worker flags for both OpenD budgets at ``speed``: 30 per 30 simulated seconds."""
    window = f"{WINDOW / speed:g}"
    return [
        "--rate-limit-requests", str(LIMIT), "--rate-limit-window", window,
        "--flow-rate-limit-requests", str(LIMIT), "--flow-rate-limit-window", window,
    ]  # fmt: skip


def _recording(sim: OpenDSimulator) -> Gateway:
    """Counts every capital distribution request the gateway sees and each one it serves,
    and every capital flow request (3211) apart: each protocol has its own limit."""
    gateway = Gateway(sim)
    handle, handle_flow = sim._capital_distribution, sim._capital_flow

    def arrived(conn: Any, request: Any, s2c: Any) -> None:
        t = sim.clock.now()
        gateway.arrivals.append(t)
        handle(conn, request, s2c)  # raises when refused: not served
        sec = request.c2s.security
        gateway.served.append((t, from_wire(sec.market, sec.code)))

    def flow_arrived(conn: Any, request: Any, s2c: Any) -> None:
        gateway.flow_arrivals.append(sim.clock.now())
        handle_flow(conn, request, s2c)

    sim._capital_distribution = arrived  # type: ignore[method-assign]
    sim._capital_flow = flow_arrived  # type: ignore[method-assign]
    return gateway


@dataclass(frozen=True)
class Variant:
    """One worker of a comparison: its name in the table, a key for its topics, its flags."""

    name: str
    key: str
    flags: tuple[str, ...]


def variants(compare: str, schedules: list[str]) -> list[Variant]:
    """The workers a comparison runs side by side, the baseline first: the schedules
    (``--compare schedule``), or the adaptive schedule without and with minute history
    (``--compare history``: the capital-flow budget unused or spent)."""
    if compare == "history":
        adaptive = ("--schedule", "adaptive")
        return [
            Variant("no minute history", "nohist", (*adaptive, "--no-minute-history")),
            Variant("minute history", "hist", (*adaptive, "--minute-history")),
        ]
    return [Variant(s, s, ("--schedule", s)) for s in schedules]


@dataclass
class Run:
    variant: Variant
    topics: Topics
    gateways: list[Gateway]
    worker: Worker | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)  # the worker's /status/ at the end
    flows: list[dict[str, Any]] = field(default_factory=list)  # with --raw: flipping ones


async def read_alerts(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every alert on ``topic`` (from the beginning to the current end)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        ends: dict[Any, int] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                out.extend(orjson.loads(r.value)["data"] for r in recs)
            assignment = consumer.assignment()
            if assignment and not ends:
                ends = await consumer.end_offsets(list(assignment))
            if ends and all([await _at_end(consumer, tp, end) for tp, end in ends.items()]):
                break
    finally:
        await consumer.stop()
    return out


async def _at_end(consumer: AIOKafkaConsumer, tp: Any, end: int) -> bool:
    return bool(await consumer.position(tp) >= end)


# -- measures -------------------------------------------------------------------------


def delays(
    flips: dict[str, list[Reversal]], alerts: list[dict[str, Any]], end: float
) -> tuple[list[float], int, int]:
    """(delays of detected flips, missed flips, alerts matching no flip on a flipping one)."""
    by_sec: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        by_sec.setdefault(alert["security"], []).append(alert)
    found: list[float] = []
    missed = 0
    used: set[str] = set()
    for sec, revs in flips.items():
        for i, rev in enumerate(revs):
            until = revs[i + 1].epoch if i + 1 < len(revs) else end
            hits = sorted(
                (a for a in by_sec.get(sec, []) if a["direction"] == rev.direction
                 and rev.epoch <= a["event_ts"] < until),
                key=lambda a: a["event_ts"],
            )  # fmt: skip
            if hits:
                found.append(hits[0]["event_ts"] - rev.epoch)
                used.add(hits[0]["alert_id"])
            else:
                missed += 1
    flipping = {s for s, r in flips.items() if r}
    stray = sum(1 for a in alerts if a["security"] in flipping and a["alert_id"] not in used)
    return found, missed, stray


def staleness(
    served: list[tuple[float, str]], securities: list[str], start: float, end: float
) -> dict[str, float]:
    """Ages sampled every simulated second after every security was polled; largest gap."""
    polls: dict[str, list[float]] = {s: [] for s in securities}
    for t, sec in served:
        if sec in polls:
            polls[sec].append(t)
    if any(not p for p in polls.values()):
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "gap": float("inf")}
    for p in polls.values():
        p.sort()
    warm = max(p[0] for p in polls.values())
    ages: list[float] = []
    t = warm
    while t <= end:
        for p in polls.values():
            ages.append(t - p[bisect.bisect_right(p, t) - 1])
        t += 1.0
    gap = 0.0
    for p in polls.values():
        times = [*p, end]
        gap = max(gap, *(b - a for a, b in itertools.pairwise(times)))
    return {
        "p50": percentile(ages, 50),
        "p99": percentile(ages, 99),
        "max": max(ages),
        "gap": gap,
        "warm": warm - start,
    }


def flow_spent(status: dict[str, Any]) -> dict[str, int]:
    """Capital-flow requests by outcome over the worker's gateways (its /status/ view)."""
    total: dict[str, int] = {}
    for gateway in status.get("gateways", []):
        side = gateway.get("capital_flow") or {}
        for outcome, count in (side.get("requests") or {}).items():
            total[outcome] = total.get(outcome, 0) + int(count)
    return total


def measure(run: Run, scenario: Scenario, length: float) -> dict[str, Any]:
    end = scenario.start + length
    labels = [f"127.0.0.1:{g.sim.port}" for g in run.gateways]  # as gateway_flags names them
    flips = {s: [r for r in revs if r.epoch < end] for s, revs in reversal_times(scenario).items()}
    found, missed, stray = delays(flips, run.alerts, end)
    flipping = {s for s, r in flips.items() if r}
    noise_alerts = sum(1 for a in run.alerts if a["security"] not in flipping)
    served = [x for g in run.gateways for x in g.served if x[0] <= end]
    per_gateway = [sum(1 for t, _ in g.served if t <= end) for g in run.gateways]
    windows = [max_in_window(sorted(g.arrivals), WINDOW) for g in run.gateways]
    flow_windows = [max_in_window(sorted(g.flow_arrivals), WINDOW) for g in run.gateways]
    rejected = sum(sum(c.errors.values()) for g in run.gateways for c in g.sim.connections.values())
    return {
        "variant": run.variant.name,
        "delays": found,
        "flips": sum(len(r) for r in flips.values()),
        "missed": missed,
        "stray": stray,
        "noise_alerts": noise_alerts,
        "alerts": len(run.alerts),
        "staleness": staleness(served, list(scenario.securities), scenario.start, end),
        "requests": per_gateway,
        "max_in_window": windows,
        "flow_requests": [sum(1 for t in g.flow_arrivals if t <= end) for g in run.gateways],
        "flow_max_in_window": flow_windows,
        "error_replies": rejected,
        "flow_status": flow_spent(run.status),
        # Securities each gateway's share holds (the spread over the worker's labels).
        "shares": [len(spread.share(list(scenario.securities), labels, label)) for label in labels],
    }


# -- driver ---------------------------------------------------------------------------


def worker_has_gateway_pool() -> bool:
    """Whether ``capflow worker`` takes several gateways (``--opend host:port,...``)."""
    out = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    return "--opend " in out.stdout


def gateway_flags(gateways: list[Gateway]) -> list[str]:
    """Worker flags for K > 1 simulated gateways (K = 1 uses --opend-port alone)."""
    if len(gateways) == 1:
        return []
    return ["--opend", ",".join(f"127.0.0.1:{g.sim.port}" for g in gateways)]


async def run_config(args: argparse.Namespace, n: int) -> dict[str, Any]:
    reversing = max(round(n * args.reversing_share), min(n // 3, 10), 1)
    scenario, length = build_scenario(n, reversing, args.seed + n)
    length = args.length or length
    prefix = run_prefix(f"detect{n}")
    runs = [
        Run(v, Topics(f"{prefix}-{v.key}"), make_gateways(scenario, args.speed, args.gateways))
        for v in variants(args.compare, args.schedules)
    ]
    for run in runs:
        await create_topics(args.bootstrap, run.topics.all())
        for g in run.gateways:
            await g.sim.start()
    workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    try:
        for run in runs:
            run.worker = start_worker(
                args.bootstrap,
                run.topics,
                f"{prefix}-{run.variant.key}-app",
                workdir,
                name=run.variant.key,
                opend_port=run.gateways[0].sim.port,
                watchlist=list(scenario.securities),
                extra=[
                    *budget_flags(args.speed),
                    *run.variant.flags,
                    "--max-staleness", f"{args.max_staleness / args.speed:g}",
                    "--no-leader-grace",
                    *gateway_flags(run.gateways),
                ],
            )  # fmt: skip
        for run in runs:
            assert run.worker is not None
            await run.worker.wait_output("Worker ready", 120)
        wall0 = time.time()
        while True:
            ages = [g.sim.clock.now() - scenario.start for run in runs for g in run.gateways]
            if min(ages) >= length:
                break
            for run in runs:
                assert run.worker is not None
                if run.worker.proc.poll() is not None:
                    raise RuntimeError(f"worker exited:\n{run.worker.tail()}")
            await asyncio.sleep(1.0)
        wall = time.time() - wall0
        await asyncio.sleep(2.0)  # alerts of the last polls
        for run in runs:
            assert run.worker is not None
            run.status = run.worker.status()
    finally:
        for run in runs:
            if run.worker is not None:
                run.worker.stop()
            for g in run.gateways:
                await g.sim.stop()
    try:
        for run in runs:
            run.alerts = await read_alerts(args.bootstrap, run.topics.alerts)
            if args.raw:  # the flows of the flipping securities, to see why
                flipping = {s for s, r in reversal_times(scenario).items() if r}
                records = await read_to_end(args.bootstrap, run.topics.flow, 120)
                flows = (orjson.loads(r.value) for r in records)
                run.flows = [f for f in flows if f["security"] in flipping]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        await delete_topics(args.bootstrap, await prefixed_topics(args.bootstrap, prefix))
    return {
        "n": n,
        "reversing": reversing,
        "length": length,
        "wall": wall,
        "results": {run.variant.name: measure(run, scenario, length) for run in runs},
        # For --raw: what each worker published.
        "alerts": {run.variant.name: run.alerts for run in runs},
        "flows": {run.variant.name: run.flows for run in runs},
    }


# -- report ---------------------------------------------------------------------------


def report(args: argparse.Namespace, config: dict[str, Any]) -> list[str]:
    n, res = config["n"], config["results"]
    names = list(res)
    base, new = (res[names[0]], res[names[-1]]) if len(names) > 1 else (None, None)
    history = args.compare == "history"
    title = f"### Detection delay, N = {n}, K = {args.gateways}"
    lines = [
        title + (": adaptive schedule with and without minute history" if history else ""),
        "",
        *header_lines(),
        _setup(args, config),
        "",
    ]
    if base and new and base["delays"] and new["delays"]:
        med = percentile(new["delays"], 50) / percentile(base["delays"], 50)
        p90 = percentile(new["delays"], 90) / percentile(base["delays"], 90)
        lines += [
            f"Ratios {names[-1]} / {names[0]}: median delay **{med:.2f}**, p90 {p90:.2f}, "
            f"max {max(new['delays']) / max(base['delays']):.2f}; staleness p50 "
            f"{new['staleness']['p50'] / base['staleness']['p50']:.2f}.",
            "",
        ]
        if (n, args.gateways) == (300, 1):
            lines += _history_targets(res, base, new) if history else _schedule_targets(args, res)
    if n == 300 and args.gateways > 1 and not history:
        lines += _pool_targets(args, n, res)
    lines += [HISTORY_READING if history else SCHEDULE_READING, ""]
    if history:
        lines += [_flow_spend(config), ""]
    held = {name: r["staleness"]["gap"] <= args.max_staleness for name, r in res.items()}
    lines += [
        "Largest gap between two polls of one security within max_staleness "
        f"({args.max_staleness:g} s): "
        + ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in held.items())
        + ". Most requests arriving in any 30 s (simulated) window, per gateway and "
        f"protocol (3212 capital distribution, 3211 capital flow), counted by the simulator "
        f"before its own limiters: limit {LIMIT} each.",
        "",
        *_table(res, "variant" if history else "schedule"),
    ]
    return lines


SCHEDULE_READING = (
    "Interpretation: a flip shows in R_W only once enough of the window lies after it "
    "(with theta_rel 0.10 and these rates about 69 % of W = 300 s, 207 s, when the "
    "last snapshot at or before t - W is close before the flip; later when the "
    "security's history is sparser), and round-robin adds up to one refresh cycle "
    "(~1.02 N s) to see it and one more to confirm it. The adaptive schedule spends "
    "its spare budget on securities on a side first, polls at the predicted crossing "
    "and confirms 3 s later, so its delay is close to the crossing time that the "
    "history allows. Noise-only securities keep one sign of large net flow: an alert "
    "on one would be a false one."
)
HISTORY_READING = (
    "Interpretation: both workers poll with the adaptive schedule and the same 3212 "
    "budget; one also spends its own 3211 budget (capital flow: the day's minutes in one "
    "request): history where a flow had no baseline, a series right before a poll whose "
    "R_W reached far back or runs against its regime, and otherwise watching the "
    "securities on a side, the one looked at longest ago first. The processor folds each "
    "series in before the next snapshot of that security, so its baseline is a minute row "
    "within a minute of t - W instead of the last snapshot before t - W (often minutes "
    "earlier at N = 300), and the scheduler reads the same minutes: a flip shows in a "
    "series between two polls, and the approach poll is planned against the minute "
    "baselines the processor will use. Polled every 3 s, these flips alert ~210 s after "
    "the flip (69 % of W plus the confirmation): the floor either variant can reach."
)


def _setup(args: argparse.Namespace, config: dict[str, Any]) -> str:
    n = config["n"]
    history = args.compare == "history"
    pool = (
        f" of {args.gateways} gateways (one market and clock, a budget each; the "
        f"worker polls all of them: `--opend` lists the {args.gateways}, each gateway's "
        "poller has its own scheduler over its share, one flow feed serves them all)"
    )
    return (
        f"Setup: {n} HK securities, {config['reversing']} of them reverse twice (flips "
        "600-1200 s and a further 1500-1800 s after the open, large net rate "
        "80,000-150,000/s), the rest noise only (half a steady one-sided trend of varying "
        "strength, half a quiet net below theta; turnover noise 0.1-0.4 on all). "
        f"{config['length']:.0f} simulated seconds at speed {args.speed:g} "
        f"({config['wall']:.0f} s wall), budgets {LIMIT} per {WINDOW:g} simulated s per "
        "gateway for capital distribution (3212) and, apart, for capital flow (3211) "
        f"(worker: `--rate-limit-window {WINDOW / args.speed:g} --flow-rate-limit-window "
        f"{WINDOW / args.speed:g}`), "
        f"`--max-staleness {args.max_staleness:g}` simulated s "
        f"(`{args.max_staleness / args.speed:g}` wall), default detector settings "
        "(W 300 s, theta_rel 0.10, confirm 2, cooldown 600 s). One real `capflow worker` "
        + (
            "per variant (`--schedule adaptive`, `--minute-history` or `--no-minute-history`)"
            if history
            else "per schedule (minute history on, the default)"
        )
        + ", both running at the same time against their own simulator"
        + (pool if args.gateways > 1 else "")
        + ". Times in simulated seconds."
    )


def verdict(title: str, checks: list[tuple[str, bool]]) -> list[str]:
    """A section's targets line: each check met or NOT met."""
    return [
        f"Targets ({title}): "
        + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks)
        + ".",
        "",
    ]


def _schedule_targets(args: argparse.Namespace, res: dict[str, Any]) -> list[str]:
    """Issue 8's N = 300, K = 1 targets: adaptive against round-robin."""
    base, new = res["round-robin"], res["adaptive"]
    med = percentile(new["delays"], 50) / percentile(base["delays"], 50)
    return verdict(
        "issue 8, N = 300, K = 1",
        [
            ("median delay <= 0.5 x round-robin", med <= 0.5),
            ("0 missed", new["missed"] == 0),
            ("noise-only alerts <= round-robin", new["noise_alerts"] <= base["noise_alerts"]),
            ("max_staleness held", new["staleness"]["gap"] <= args.max_staleness),
            (f"no window over {LIMIT}", _windows_held(res)),
        ],
    )


def _history_targets(res: dict[str, Any], base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Issue 15's (c): the 3211 budget against none, adaptive schedule both."""
    med = percentile(new["delays"], 50) / percentile(base["delays"], 50)
    return verdict(
        "issue 15 (c), N = 300, K = 1",
        [
            ("median delay with minute history <= 0.85 x without", med <= 0.85),
            ("0 missed", new["missed"] == 0),
            ("noise-only alerts <= without", new["noise_alerts"] <= base["noise_alerts"]),
            (f"no window over {LIMIT} on either protocol", _windows_held(res)),
        ],
    )


def _windows_held(res: dict[str, Any]) -> bool:
    return all(
        m <= LIMIT for r in res.values() for m in (*r["max_in_window"], *r["flow_max_in_window"])
    )


def _flow_spend(config: dict[str, Any]) -> str:
    """How the worker with minute history spent its capital-flow budget (its /status/)."""
    parts = []
    for name, r in config["results"].items():
        spent = r.get("flow_status") or {}
        if spent.get("total"):
            parts.append(
                f"{name}: {spent['total']} capital-flow requests, {spent.get('ok', 0)} answered, "
                f"{spent.get('before_poll', 0)} of them right before a poll of the same "
                "security (a long poll gap or a flow against its regime), the rest in the "
                "background (no flow read yet, no baseline, or watching a security on a "
                "side)"
            )
    return (
        "Capital-flow budget (the worker's /status/ at the end): "
        + ("; ".join(parts) if parts else "none spent")
        + "."
    )


def _table(res: dict[str, Any], first: str) -> list[str]:
    rows = []
    for name, r in res.items():
        d, st = r["delays"], r["staleness"]
        rows.append(
            [
                name,
                f"{fmt(percentile(d, 50), 0)} / {fmt(percentile(d, 90), 0)} / "
                f"{fmt(max(d) if d else float('nan'), 0)}",
                f"{r['missed']} of {r['flips']}",
                r["noise_alerts"],
                r["stray"],
                f"{fmt(st['p50'], 0)} / {fmt(st['p99'], 0)} / {fmt(st['max'], 1)}",
                fmt(st["gap"], 1),
                " + ".join(str(x) for x in r["requests"]),
                " / ".join(str(x) for x in r["max_in_window"]),
                " + ".join(str(x) for x in r["flow_requests"]),
                " / ".join(str(x) for x in r["flow_max_in_window"]),
                r["error_replies"],
            ]
        )
    return table(
        [
            first,
            "delay p50 / p90 / max",
            "missed",
            "noise-only alerts",
            "other alerts on flipping",
            "staleness p50 / p99 / max",
            "largest poll gap",
            "3212 requests per gateway",
            "3212 most in any 30 s",
            "3211 requests per gateway",
            "3211 most in any 30 s",
            "error replies",
        ],
        rows,
    )


def _pool_targets(args: argparse.Namespace, n: int, res: dict[str, Any]) -> list[str]:
    """Issue 8's K > 1 targets: the staleness of an even spread, no window over the limit."""
    k = args.gateways
    bound = 1.02 * n / k
    windows_ok = _windows_held(res)
    parts = [
        f"{name} staleness max {r['staleness']['max']:.1f} s <= 1.02 N / K = {bound:.1f} s: "
        + ("met" if r["staleness"]["max"] <= bound else "NOT met")
        for name, r in res.items()
    ]
    parts.append(f"no window over {LIMIT} on any gateway: {'met' if windows_ok else 'NOT met'}")
    shares = {name: r.get("shares") for name, r in res.items()}
    return [
        f"Targets (issue 8, N = {n}, K = {k}): " + "; ".join(parts) + ". The staleness "
        "bound is the round-robin one (every security refreshed every ~1.02 N / K s), and "
        "it assumes an even spread: round-robin refreshes a gateway's share every ~1.02 x "
        "its size s, and the rendezvous spread gives shares of "
        + "; ".join(
            f"{' / '.join(str(x) for x in sizes)} ({name})"
            for name, sizes in shares.items()
            if sizes
        )
        + " securities. The adaptive schedule trades staleness for detection by design and "
        f"is held to `--max-staleness` ({args.max_staleness:g} s) instead.",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--securities", default="30,300", help="comma-separated N values")
    parser.add_argument("--gateways", type=int, default=1, help="K gateways per worker")
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--max-staleness", type=float, default=600.0, help="simulated s")
    parser.add_argument("--reversing-share", type=float, default=0.1)
    parser.add_argument(
        "--compare",
        choices=COMPARES,
        default="schedule",
        help="schedule: --schedules side by side (minute history on in both); history: the "
        "adaptive schedule with and without minute history (the 3211 budget)",
    )
    parser.add_argument("--schedules", default=",".join(SCHEDULES))
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--raw", default="", help="also write raw results here ({n}: N)")
    parser.add_argument("--length", type=float, default=0.0, help="simulated s (0: auto)")
    parser.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP)
    args = parser.parse_args()
    args.schedules = [s.strip() for s in args.schedules.split(",") if s.strip()]
    if args.gateways < 1:
        parser.error("--gateways must be >= 1")
    if args.gateways > 1 and not worker_has_gateway_pool():
        parser.error("K > 1 needs the gateway pool (capflow worker --opend host:port,...)")
    # SIGTERM unwinds like Ctrl-C, so workers, simulators and topics are cleaned up.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    for n in (int(x) for x in args.securities.split(",")):
        config = asyncio.run(run_config(args, n))
        if args.raw:
            path = Path(args.raw.format(n=n))
            path.write_text(json.dumps({"args": vars(args), "config": config}, default=str))
        lines = report(args, config)
        print("\n".join(lines), flush=True)
        suffix = "-history" if args.compare == "history" else ""
        update_section(f"detection_delay-{n}-k{args.gateways}{suffix}", lines)


if __name__ == "__main__":
    main()
