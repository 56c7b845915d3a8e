"""Minute history end to end: a worker started mid-day, and an OpenD outage mid-day.

Two real ``capflow worker`` processes run side by side on one simulated market: two
simulated gateways share one market model and one clock (as ``capflow opend-sim
--gateways 2``), each with its own budgets (30 per 30 simulated seconds for capital
distribution, 3212, and apart for capital flow, 3211), and each worker polls its own
gateway with its own topics and app id. So the two are independent workers of the same
market: neither reads what the other polled, and the one started late has nothing but
what it fetches itself. Simulated time runs ``--speed`` times faster than wall time, the
budgets scaled with it on both sides, as in bench/detection_delay.py (whose scenario
builder, gateways and alert matching this reuses).

``late-start``: a worker runs from the open; a second one with a fresh app id is
started so that its first request comes at open + ``--start`` (default 100 minutes).
The reversing securities flip every 1500-2400 s, so flips fall before the start, during
the late worker's first window and after it. Measured: from W + 2 min after the late
worker's start on, its alerts against the other's (same security and direction, event
times within 90 s: equal; extra; missing); how long until every security has a flow
with a baseline other than ``none`` (warm), from the late worker's first request; and
what it sent before that.

``outage``: a worker runs from the open beside a reference worker; its gateway is down
(port closed, connections dropped) from ``--outage-at`` for ``--outage`` seconds.
Every reversing security flips once before, once inside and once after the outage.
Measured: each flip inside the outage alerted once after it (live or found in minute
history), none spurious, and when each alert was published after OpenD returned.

    .venv/bin/python -m bench.minute_history late-start [--securities 30,300]
    .venv/bin/python -m bench.minute_history outage [--securities 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from bench.common import (
    DEFAULT_BOOTSTRAP,
    Topics,
    Worker,
    create_topics,
    delete_topics,
    fmt,
    header_lines,
    percentile,
    prefixed_topics,
    run_prefix,
    start_worker,
    table,
    update_section,
)
from bench.detection_delay import (
    LIMIT,
    WINDOW,
    Gateway,
    budget_flags,
    build_scenario,
    delays,
    make_gateways,
    verdict,
)
from bench.poll_budget import max_in_window
from streams.devtools import alerts_of, read_to_end
from streams.opend_sim.scenario import Reversal, Scenario, reversal_times

W = 300.0  # the worker's window (default)
MATCH_S = 90.0  # two alerts are the same when their event times are this close
SETTLE_S = 120.0  # after the late worker's first window, before alerts are compared


# -- scenarios --------------------------------------------------------------------------


def flips_every(first: tuple[float, float], gap: tuple[float, float], last: float) -> Any:
    """Flip times: the first in ``first``, then every ``gap`` (uniform) up to ``last``."""

    def draw(rng: random.Random) -> list[float]:
        out = [rng.uniform(*first)]
        while (following := out[-1] + rng.uniform(*gap)) <= last:
            out.append(following)
        return out

    return draw


def flips_around(opened: float, closed: float) -> Any:
    """Flip times: one before the outage, one inside it (a minute from either end),
    one 900-1500 s after it (the cooldown of an alert at the outage's end has passed)."""

    def draw(rng: random.Random) -> list[float]:
        return [
            rng.uniform(600, max(600.0, opened - 1500)),
            rng.uniform(opened + 60, closed - 60),
            closed + rng.uniform(900, 1500),
        ]

    return draw


def reversing_count(n: int, share: float) -> int:
    """As bench/detection_delay.py: a share of N, at least min(N // 3, 10)."""
    return max(round(n * share), min(n // 3, 10), 1)


# -- alerts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Alerts of a worker against a reference's, from ``since`` on."""

    same: int
    extra: list[dict[str, Any]]  # the worker's, unmatched
    missing: list[dict[str, Any]]  # the reference's, unmatched
    offsets: list[float]  # |event time difference| of each matched pair


def compare_alerts(
    reference: Sequence[dict[str, Any]],
    late: Sequence[dict[str, Any]],
    since: float,
    tolerance: float = MATCH_S,
) -> Comparison:
    """Pair alerts of the same security and direction whose event times lie within
    ``tolerance``, closest first. Counted are the alerts at or after ``since`` on either
    side; one just before ``since`` may still pair with one after it (it is not extra
    or missing: the two workers only saw the same flip a little apart)."""
    lo = since - tolerance
    refs = [a for a in reference if a["event_ts"] >= lo]
    mine = [a for a in late if a["event_ts"] >= lo]
    pairs = sorted(
        (abs(a["event_ts"] - b["event_ts"]), i, j)
        for i, a in enumerate(refs)
        for j, b in enumerate(mine)
        if a["security"] == b["security"]
        and a["direction"] == b["direction"]
        and abs(a["event_ts"] - b["event_ts"]) <= tolerance
    )
    used_ref: set[int] = set()
    used_mine: set[int] = set()
    offsets: list[float] = []
    same = 0
    for gap, i, j in pairs:
        if i in used_ref or j in used_mine:
            continue
        used_ref.add(i)
        used_mine.add(j)
        offsets.append(gap)
        if refs[i]["event_ts"] >= since or mine[j]["event_ts"] >= since:
            same += 1
    extra = [b for j, b in enumerate(mine) if j not in used_mine and b["event_ts"] >= since]
    missing = [a for i, a in enumerate(refs) if i not in used_ref and a["event_ts"] >= since]
    return Comparison(same, extra, missing, offsets)


def unequal(
    alerts: Sequence[dict[str, Any]], others: Sequence[dict[str, Any]], t0: float
) -> list[str]:
    """Each of ``alerts`` (extra or missing) with its time after ``t0`` and how far the
    other worker's nearest alert of the same security and direction lies (or none)."""
    out = []
    for a in alerts:
        same = [
            b["event_ts"] - a["event_ts"]
            for b in others
            if b["security"] == a["security"] and b["direction"] == a["direction"]
        ]
        near = min(same, key=abs, default=None)
        other = "none by the other" if near is None else f"the other's {near:+.0f} s from it"
        out.append(f"{a['security']} {a['direction']} at t0 + {a['event_ts'] - t0:.0f} s ({other})")
    return out


def first_baselines(flows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per security, its first flow record whose baseline is not ``none`` (event order)."""
    first: dict[str, dict[str, Any]] = {}
    for flow in sorted(flows, key=lambda f: f["event_ts"]):
        if flow.get("baseline") != "none":
            first.setdefault(flow["security"], flow)
    return first


def alerts_per_flip(
    flips: Sequence[Reversal], alerts: Sequence[dict[str, Any]], until: dict[str, float]
) -> dict[Reversal, list[dict[str, Any]]]:
    """Each flip's alerts: same security and direction, from the flip until the security's
    next flip (``until``, by flip epoch; the end of the run after its last one)."""
    out: dict[Reversal, list[dict[str, Any]]] = {}
    for flip in flips:
        end = until[f"{flip.security}@{flip.epoch}"]
        out[flip] = sorted(
            (a for a in alerts if a["security"] == flip.security
             and a["direction"] == flip.direction and flip.epoch <= a["event_ts"] < end),
            key=lambda a: a["event_ts"],
        )  # fmt: skip
    return out


def next_flip_times(scenario: Scenario, end: float) -> dict[str, float]:
    """Per flip (``security@epoch``), the epoch of the security's next flip (or ``end``)."""
    out: dict[str, float] = {}
    for security, flips in reversal_times(scenario).items():
        for i, flip in enumerate(flips):
            nxt = flips[i + 1].epoch if i + 1 < len(flips) else end
            out[f"{security}@{flip.epoch}"] = min(nxt, end)
    return out


# -- the two workers --------------------------------------------------------------------


@dataclass
class Side:
    """One worker of the pair, on its own gateway and topics."""

    name: str
    key: str
    gateway: Gateway
    topics: Topics
    worker: Worker | None = None
    launched: float | None = None  # simulated time its process was started
    alerts: list[dict[str, Any]] = field(default_factory=list)  # the alert events' data
    published: dict[str, float] = field(default_factory=dict)  # alert id -> Kafka time (s)
    flows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def first_request(self) -> float | None:
        """Simulated time of the worker's first quote request (3212 or 3211)."""
        times = [*self.gateway.arrivals[:1], *self.gateway.flow_arrivals[:1]]
        return min(times) if times else None


@dataclass
class Pair:
    """Both workers of a run and the scenario they poll."""

    scenario: Scenario
    length: float
    sides: list[Side]
    args: argparse.Namespace
    workdir: Path
    prefix: str

    @property
    def clock_now(self) -> float:
        """Seconds since the open, simulated (one clock for both gateways)."""
        return self.sides[0].gateway.sim.clock.now() - self.scenario.start

    def launch(self, side: Side) -> Worker:
        side.launched = self.clock_now if side.gateway.sim.clock.speed else 0.0
        side.worker = start_worker(
            self.args.bootstrap,
            side.topics,
            f"{self.prefix}-{side.key}-app",
            self.workdir,
            name=side.key,
            opend_port=side.gateway.sim.port,
            watchlist=list(self.scenario.securities),
            extra=[
                *budget_flags(self.args.speed),
                "--max-staleness", f"{self.args.max_staleness / self.args.speed:g}",
                "--no-leader-grace",
            ],
        )  # fmt: skip
        return side.worker

    async def until(self, at: float, what: str) -> None:
        """Wait for simulated time ``at`` (seconds since the open); fail if a worker died."""
        while self.clock_now < at:
            for side in self.sides:
                if side.worker is not None and side.worker.proc.poll() is not None:
                    raise RuntimeError(f"{side.name} exited before {what}:\n{side.worker.tail()}")
            await asyncio.sleep(0.2)


async def read_side(bootstrap: str, side: Side) -> None:
    """The side's alerts (with their Kafka timestamps) and flow records."""
    records: list[ConsumerRecord] = await read_to_end(bootstrap, side.topics.alerts, 60)
    for record, event in zip(records, alerts_of(records), strict=True):
        side.alerts.append(event["data"])
        side.published[event["data"]["alert_id"]] = record.timestamp / 1000
    flows = await read_to_end(bootstrap, side.topics.flow, 120)
    side.flows = [orjson.loads(r.value) for r in flows]


async def run_pair(
    args: argparse.Namespace,
    scenario: Scenario,
    length: float,
    names: tuple[tuple[str, str], tuple[str, str]],
    during: Callable[[Pair], Awaitable[None]],
) -> tuple[Pair, float]:
    """Both workers on their gateways until ``length`` simulated seconds; ``during(pair)``
    starts the second one (or both) and does what the mode does meanwhile. The pair and
    the wall seconds the day took."""
    prefix = run_prefix(f"mh{len(scenario.securities)}")
    gateways = make_gateways(scenario, args.speed, 2)
    sides = [
        Side(name, key, gw, Topics(f"{prefix}-{key}"))
        for (name, key), gw in zip(names, gateways, strict=True)
    ]
    workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    pair = Pair(scenario, length, sides, args, workdir, prefix)
    for side in sides:
        await create_topics(args.bootstrap, side.topics.all())
        await side.gateway.sim.start()
    wall0 = time.time()
    try:
        await during(pair)
        await pair.until(length, "the end of the day")
        wall = time.time() - wall0
        await asyncio.sleep(3.0)  # alerts of the last polls
    finally:
        for side in sides:
            if side.worker is not None:
                side.worker.stop()
        for gw in gateways:
            await gw.sim.stop()
    try:
        for side in sides:
            await read_side(args.bootstrap, side)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        await delete_topics(args.bootstrap, await prefixed_topics(args.bootstrap, prefix))
    return pair, wall


async def first_request(side: Side, timeout: float = 180.0) -> float:
    """Wall seconds from the side's launch until its first quote request."""
    assert side.worker is not None
    deadline = time.monotonic() + timeout
    while side.first_request is None:
        if side.worker.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{side.name} sent no request:\n{side.worker.tail()}")
        await asyncio.sleep(0.05)
    return time.time() - side.worker.started


def limits(pair: Pair) -> dict[str, list[int]]:
    """Most requests in any 30 simulated seconds, per gateway and protocol."""
    return {
        "3212": [max_in_window(sorted(s.gateway.arrivals), WINDOW) for s in pair.sides],
        "3211": [max_in_window(sorted(s.gateway.flow_arrivals), WINDOW) for s in pair.sides],
    }


# -- late start -------------------------------------------------------------------------


async def late_start(args: argparse.Namespace, n: int) -> dict[str, Any]:
    start = args.start
    last_flip = start + args.after - 600
    scenario, _ = build_scenario(
        n,
        reversing_count(n, args.reversing_share),
        args.seed + n,
        flips_every((600, 1200), (1500, 2400), last_flip),
        name="bench-late-start",
    )
    length = start + args.after
    measured: dict[str, float] = {}

    async def during(pair: Pair) -> None:
        early, late = pair.sides
        await pair.launch(early).wait_output("Worker ready", 180)
        startup = await first_request(early)
        # Launched so that its first request comes at about the start (its start-up takes
        # about as long as the first worker's did).
        await pair.until(start - startup * args.speed, "the late start")
        pair.launch(late)
        measured["startup_wall"] = startup

    pair, wall = await run_pair(
        args,
        scenario,
        length,
        (("since the open", "open"), (f"started at +{start / 60:g} min", "late")),
        during,
    )
    return {"n": n, "pair": pair, "wall": wall, **measured}


def late_start_results(config: dict[str, Any]) -> dict[str, Any]:
    pair: Pair = config["pair"]
    early, late = pair.sides
    open_ = pair.scenario.start
    t0 = late.first_request
    assert t0 is not None
    cut = t0 + W + SETTLE_S
    comparison = compare_alerts(early.alerts, late.alerts, cut)
    warm_up = compare_alerts(
        [a for a in early.alerts if a["event_ts"] < cut],
        [a for a in late.alerts if a["event_ts"] < cut],
        t0,
    )
    first = first_baselines(late.flows)
    warm = [first[s]["event_ts"] - t0 for s in pair.scenario.securities if s in first]
    late_flows = sorted(late.flows, key=lambda f: f["event_ts"])
    first_seen: dict[str, dict[str, Any]] = {}
    for flow in late_flows:
        first_seen.setdefault(flow["security"], flow)
    everyone = len(warm) == len(pair.scenario.securities)
    warm_at = t0 + max(warm) if everyone and warm else None
    end = open_ + pair.length
    scripted = reversal_times(pair.scenario).items()
    flips = {s: [r for r in f if t0 <= r.epoch < end] for s, f in scripted}
    return {
        "t0": t0 - open_,
        "launched": late.launched,
        "cut": cut - open_,
        "comparison": comparison,
        "warm_up": warm_up,
        "warm": warm,
        "warm_all": max(warm) if everyone and warm else None,
        "unwarmed": len(pair.scenario.securities) - len(warm),
        "first_none": sum(1 for f in first_seen.values() if f.get("baseline") == "none"),
        "first_baselines": _count(f.get("baseline", "?") for f in first.values()),
        "past_alerts": sum(1 for a in late.alerts if a["event_ts"] < t0),
        "history_alerts": sum(1 for a in late.alerts if a.get("found_in_history")),
        "flow_requests_to_warm": sum(
            1 for t in late.gateway.flow_arrivals if warm_at is None or t <= warm_at
        ),
        "delays": {s.name: delays(flips, s.alerts, end)[:2] for s in pair.sides},
        "limits": limits(pair),
        "alerts_after_cut": {
            s.name: sum(1 for a in s.alerts if a["event_ts"] >= cut) for s in pair.sides
        },
    }


def _counted(counts: dict[str, int]) -> str:
    """E.g. ``minute 296, none 4``."""
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out


def late_start_report(args: argparse.Namespace, config: dict[str, Any]) -> list[str]:
    pair: Pair = config["pair"]
    r = late_start_results(config)
    n = config["n"]
    early, late = (s.name for s in pair.sides)
    c: Comparison = r["comparison"]
    wu: Comparison = r["warm_up"]
    reversing = sum(1 for f in reversal_times(pair.scenario).values() if f)
    lines = [
        f"### Late start end to end, N = {n}: a worker started at open + "
        f"{args.start / 60:g} min beside one running since the open",
        "",
        *header_lines(),
        f"Setup: {n} HK securities, {reversing} of them reverse every 1500-2400 s "
        "(the first flip 600-1200 s after the open, large net rate 80,000-150,000/s), "
        "the rest noise only (as in the detection-delay benchmark). Two real `capflow "
        "worker` processes (adaptive schedule, minute history on, the defaults) on two "
        "simulated gateways of one market and clock, each worker with its own gateway, "
        "budgets (30 per 30 simulated s for 3212 and apart for 3211: `"
        + " ".join(budget_flags(args.speed))
        + f"`), topics and app id. {pair.length:.0f} simulated seconds at speed "
        f"{args.speed:g} ({config['wall']:.0f} s wall). The late worker was launched at "
        f"+{r['launched']:.0f} s (the first worker's start-up, "
        f"{config['startup_wall']:.1f} s wall, ahead of the start) and sent its first "
        f"request at +{r['t0']:.0f} s: its start, t0. Alerts compared from t0 + W + 2 min "
        f"= +{r['cut']:.0f} s to the end: same security and direction, event times within "
        f"{MATCH_S:g} s. Times in simulated seconds.",
        "",
    ]
    targets = [
        ("after W + 2 min the late worker's alerts equal the other's", not (c.extra or c.missing)),
        ("0 extra", not c.extra),
        ("0 missing", not c.missing),
        ("no alert for the past (before t0)", r["past_alerts"] == 0),
        (
            "no window over either limit",
            all(m <= LIMIT for ms in r["limits"].values() for m in ms),
        ),
    ]
    lines += verdict("issue 15 (a)", targets)
    warm = r["warm"]
    warm_text = (
        f"**{r['warm_all']:.0f} s** ({r['warm_all'] / args.speed:.1f} s wall at speed "
        f"{args.speed:g})"
        if r["warm_all"] is not None
        else f"not reached ({r['unwarmed']} of {n} never had a baseline)"
    )
    lines += table(
        ["measure", "value"],
        [
            ["alerts from t0 + W + 2 min: " + early, r["alerts_after_cut"][early]],
            ["alerts from t0 + W + 2 min: " + late, r["alerts_after_cut"][late]],
            ["equal (same security and direction, within 90 s)", c.same],
            ["extra (the late worker's, unmatched)", _listed(c.extra)],
            ["missing (the other's, unmatched)", _listed(c.missing)],
            [
                "event-time offset of equal pairs, median / max",
                f"{fmt(statistics.median(c.offsets), 0)} / {fmt(max(c.offsets), 0)} s"
                if c.offsets
                else "-",
            ],
            [
                "in the first W + 2 min (t0 to the cut): equal / extra / missing",
                f"{wu.same} / {len(wu.extra)} / {len(wu.missing)}",
            ],
            ["late worker's alerts before t0 (the past)", r["past_alerts"]],
            ["late worker's alerts found in history", r["history_alerts"]],
            [f"warm: every one of the {n} securities has a baseline, after t0", warm_text],
            [
                "per security, from t0 until its first flow with a baseline: median / p90",
                f"{fmt(percentile(warm, 50), 0)} / {fmt(percentile(warm, 90), 0)} s",
            ],
            ["first flow without a baseline (`none`), securities", r["first_none"]],
            [
                "baseline of each security's first flow with one",
                _counted(r["first_baselines"]),
            ],
            ["late worker's 3211 requests until warm", r["flow_requests_to_warm"]],
            *[
                [
                    f"flips after t0, {name}: delay median / p90, missed",
                    f"{fmt(percentile(d, 50), 0)} / {fmt(percentile(d, 90), 0)} s, {missed}",
                ]
                for name, (d, missed) in r["delays"].items()
            ],
            [
                "most requests in any 30 s, per gateway (limit 30 each)",
                _limits(r["limits"]),
            ],
        ],
    )
    return [*lines, "", *late_start_reading(args, r, n, pair)]


def late_start_reading(
    args: argparse.Namespace, r: dict[str, Any], n: int, pair: Pair
) -> list[str]:
    """What the numbers say, from the numbers."""
    early, late = pair.sides
    t0 = pair.scenario.start + r["t0"]
    c: Comparison = r["comparison"]
    text = (
        f"Reading: the late worker had every security's minute history before its first "
        f"poll but for {r['first_none']} of {n} (their first flow had no baseline; the "
        "next poll folded their series in), so its regimes, last confirmed sides and "
        "cooldown clocks came from the day's minutes, and it sent nothing for the past. "
    )
    if r["warm_all"] is not None:
        text += (
            f"Every security had a baseline {r['warm_all']:.0f} s after its start, the "
            f"median one after {percentile(r['warm'], 50):.0f} s: its first poll, in the "
            "first pass of the capital-distribution budget over the watchlist (one request "
            "a second, beside the confirming polls); the last were those polled before "
            "their series came in (at their next poll). "
        )
    if c.extra or c.missing:
        text += (
            "Not equal: "
            + "; ".join(
                [f"extra {x}" for x in unequal(c.extra, early.alerts, t0)]
                + [f"missing {x}" for x in unequal(c.missing, late.alerts, t0)]
            )
            + ". Each worker polls on its own schedule, so two alerts of one flip can lie "
            "further apart than 90 s, most of all for flips during the late worker's "
            "first pass over the watchlist (its first snapshot of a security may come after "
            "the crossing)."
        )
    else:
        text += "From W + 2 min on, its alerts are the other worker's."
    return [text]


def _limits(most: dict[str, list[int]]) -> str:
    """E.g. ``3212: 30 and 30; 3211: 27 and 30`` (the two workers' gateways)."""
    return "; ".join(f"{proto}: {' and '.join(map(str, n))}" for proto, n in most.items())


def _listed(alerts: Sequence[dict[str, Any]], at_most: int = 6) -> str:
    """A count, and the first few as security direction @ seconds."""
    if not alerts:
        return "0"
    shown = ", ".join(
        f"{a['security']} {a['direction']} @{a['event_ts']:.0f}" for a in alerts[:at_most]
    )
    return f"{len(alerts)} ({shown}{', ...' if len(alerts) > at_most else ''})"


# -- outage -----------------------------------------------------------------------------


async def outage(args: argparse.Namespace, n: int) -> dict[str, Any]:
    opened, closed = args.outage_at, args.outage_at + args.outage
    scenario, _ = build_scenario(
        n,
        reversing_count(n, args.reversing_share),
        args.seed + n,
        flips_around(opened, closed),
        name="bench-outage",
    )
    length = closed + 1500 + 900
    marks: dict[str, float] = {}

    async def during(pair: Pair) -> None:
        for side in pair.sides:
            pair.launch(side)
        for side in pair.sides:
            assert side.worker is not None
            await side.worker.wait_output("Worker ready", 180)
        down = pair.sides[1].gateway.sim
        await pair.until(opened, "the outage")
        await down.stop()  # its port closed, every connection dropped
        marks["down_at"] = pair.clock_now
        await pair.until(closed, "the end of the outage")
        await down.start()  # the same port again
        marks["up_at"], marks["up_wall"] = pair.clock_now, time.time()

    pair, wall = await run_pair(
        args, scenario, length, (("no outage", "ref"), ("outage", "out")), during
    )
    return {"n": n, "pair": pair, "wall": wall, **marks}


def outage_results(config: dict[str, Any], speed: float) -> dict[str, Any]:
    pair: Pair = config["pair"]
    ref, out = pair.sides
    open_ = pair.scenario.start
    down, up = open_ + config["down_at"], open_ + config["up_at"]
    end = open_ + pair.length
    flips = reversal_times(pair.scenario)
    until = next_flip_times(pair.scenario, end)
    inside = [f for fs in flips.values() for f in fs if down <= f.epoch < up]
    per_flip = alerts_per_flip(inside, out.alerts, until)
    ref_flip = alerts_per_flip(inside, ref.alerts, until)
    after = [
        (out.published[a[0]["alert_id"]] - config["up_wall"]) * speed
        for a in per_flip.values()
        if a
    ]
    all_flips = {s: [r for r in fs if r.epoch < end] for s, fs in flips.items()}
    results = {}
    for side in pair.sides:
        found, missed, stray = delays(all_flips, side.alerts, end)
        flipping = {s for s, fs in all_flips.items() if fs}
        results[side.name] = {
            "missed": missed,
            "stray": stray,
            "noise": sum(1 for a in side.alerts if a["security"] not in flipping),
            "alerts": len(side.alerts),
            "flips": sum(len(fs) for fs in all_flips.values()),
            "delays": found,
        }
    back = [t for t in out.gateway.arrivals if t >= up]
    first_after: dict[str, str] = {}
    for flow in sorted(out.flows, key=lambda f: f["event_ts"]):
        if flow["event_ts"] >= up:
            first_after.setdefault(flow["security"], flow.get("baseline", "?"))
    return {
        "first_after": _count(first_after.values()),
        "inside": len(inside),
        "once": sum(1 for a in per_flip.values() if len(a) == 1),
        "none": sum(1 for a in per_flip.values() if not a),
        "twice": sum(1 for a in per_flip.values() if len(a) > 1),
        "found_in_history": sum(1 for a in per_flip.values() if a and a[0]["found_in_history"]),
        "after_up": after,
        "event_delay": [a[0]["event_ts"] - f.epoch for f, a in per_flip.items() if a],
        "ref_delay": [a[0]["event_ts"] - f.epoch for f, a in ref_flip.items() if a],
        "ref_missed": sum(1 for a in ref_flip.values() if not a),
        "inside_live": sum(
            1
            for a in per_flip.values()
            for x in a
            if not x["found_in_history"] and x["event_ts"] < up
        ),
        "first_back": (back[0] - up) if back else None,
        "sides": results,
        "limits": limits(pair),
        "down": config["down_at"],
        "up": config["up_at"],
    }


def outage_report(args: argparse.Namespace, config: dict[str, Any]) -> list[str]:
    pair: Pair = config["pair"]
    r = outage_results(config, args.speed)
    n = config["n"]
    reversing = sum(1 for f in reversal_times(pair.scenario).values() if f)
    out, ref = r["sides"]["outage"], r["sides"]["no outage"]
    spurious = out["stray"] + out["noise"]
    targets = [
        (
            "every flip inside the outage alerted once after it",
            r["once"] == r["inside"] and all(x >= 0 for x in r["after_up"]),
        ),
        ("none spurious", spurious == 0 and r["twice"] == 0),
        ("no window over either limit", all(m <= LIMIT for ms in r["limits"].values() for m in ms)),
    ]
    after = r["after_up"]
    lines = [
        f"### OpenD outage mid-day, N = {n}: {args.outage / 60:g} minutes without OpenD",
        "",
        *header_lines(),
        f"Setup: {n} HK securities, {reversing} of them reverse three times: once 600 s "
        "after the open or later and at least 1500 s before the outage, once inside it (at "
        "least a minute from either end), once 900-1500 s after it; the rest noise only. "
        "Two real `capflow worker` processes from the open (adaptive schedule, minute "
        "history on) on two simulated gateways of one market and clock, each with its own "
        "budgets (`" + " ".join(budget_flags(args.speed)) + "`), topics and app id; the "
        f"`outage` worker's gateway stops (its port closed, connections dropped) from "
        f"+{r['down']:.0f} s to +{r['up']:.0f} s after the open, then listens on the same "
        f"port again. {pair.length:.0f} simulated seconds at speed {args.speed:g} "
        f"({config['wall']:.0f} s wall). Times in simulated seconds; the delay after "
        "OpenD returns is the alert's Kafka timestamp minus the wall time the gateway "
        "listened again, times the speed.",
        "",
        *verdict("issue 15 (b)", targets),
        *table(
            ["measure", "value"],
            [
                ["flips inside the outage", r["inside"]],
                [
                    "alerted once / not at all / more than once",
                    f"{r['once']} / {r['none']} / {r['twice']}",
                ],
                ["of those alerted: found in minute history", r["found_in_history"]],
                [
                    "baseline of each security's first flow after the outage",
                    _counted(r["first_after"]),
                ],
                ["alerted live inside the outage (impossible)", r["inside_live"]],
                [
                    "published after OpenD returned: median / p90 / max",
                    f"{fmt(percentile(after, 50), 0)} / {fmt(percentile(after, 90), 0)} / "
                    f"{fmt(max(after) if after else float('nan'), 0)} s",
                ],
                [
                    "first capital-distribution request after OpenD returned",
                    f"+{fmt(r['first_back'] or float('nan'), 0)} s",
                ],
                [
                    "event time - flip, outage worker: median / max",
                    f"{fmt(percentile(r['event_delay'], 50), 0)} / "
                    f"{fmt(max(r['event_delay']) if r['event_delay'] else float('nan'), 0)} s",
                ],
                [
                    "event time - flip, reference worker (no outage): median / max, missed",
                    f"{fmt(percentile(r['ref_delay'], 50), 0)} / "
                    f"{fmt(max(r['ref_delay']) if r['ref_delay'] else float('nan'), 0)} s, "
                    f"{r['ref_missed']}",
                ],
                *[
                    [
                        f"whole day, {name}: alerts, missed flips, noise-only, other on flipping",
                        f"{s['alerts']}, {s['missed']} of {s['flips']}, {s['noise']}, {s['stray']}",
                    ]
                    for name, s in (("no outage", ref), ("outage", out))
                ],
                [
                    "most requests in any 30 s, per gateway (limit 30 each)",
                    _limits(r["limits"]),
                ],
            ],
        ),
    ]
    return [*lines, "", *outage_reading(args, r, n)]


def outage_reading(args: argparse.Namespace, r: dict[str, Any], n: int) -> list[str]:
    """What the numbers say, from the numbers."""
    after = r["after_up"]
    first = r["first_back"]
    text = (
        f"Reading: {r['once']} of the {r['inside']} flips inside the outage were alerted "
        f"once after it, {r['found_in_history']} of them found in minute history (event "
        "time the minute the replay over the hole confirmed it), "
        f"{r['once'] - r['found_in_history']} live after it. "
    )
    if first is not None:
        text += (
            f"The worker's first capital-distribution request came {first:.0f} s after "
            "OpenD listened again (its reconnect backoff, at most 5 s of wall time, is not "
            f"scaled with the speed: up to {5 * args.speed:.0f} simulated seconds here). "
        )
    first = r["first_after"]
    text += (
        f"Of the {n} securities' first snapshots after the outage, {first.get('none', 0)} "
        "had no baseline (their last level lay more than W before t - W and no series had "
        "come yet: the series their flow then asked for is folded in at their next poll) "
        f"and {first.get('minute', 0)} a minute baseline (a series fetched before the "
        "poll, the watch's: it takes the securities looked at longest ago first); either "
        "way the replay over the hole's minutes finds a reversal confirmed inside it. An "
        "alert so comes within one or two polls of the security after OpenD returns "
        f"(N = {n} at one request a second)"
    )
    if after:
        text += f": {percentile(after, 50):.0f} s median, {max(after):.0f} s at most here."
    else:
        text += "."
    return [text]


def raw(pair: Pair) -> dict[str, Any]:
    """Per worker: its alerts, and the flows and 3212 polls of the flipping securities."""
    flipping = {s for s, f in reversal_times(pair.scenario).items() if f}
    return {
        "start": pair.scenario.start,
        "flips": {
            s: [(r.epoch, r.direction) for r in f]
            for s, f in reversal_times(pair.scenario).items()
            if f
        },
        "sides": {
            side.name: {
                "first_request": side.first_request,
                "alerts": side.alerts,
                "flows": [f for f in side.flows if f["security"] in flipping],
                "polls": [(t, s) for t, s in side.gateway.served if s in flipping],
            }
            for side in pair.sides
        },
    }


# -- command line -----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("late-start", "outage"))
    parser.add_argument(
        "--securities", default="", help="N values (late-start: 30,300; outage: 300)"
    )
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--start", type=float, default=6000.0, help="late start, s after the open")
    parser.add_argument("--after", type=float, default=2400.0, help="s simulated after the start")
    parser.add_argument("--outage-at", type=float, default=3600.0, help="s after the open")
    parser.add_argument("--outage", type=float, default=1200.0, help="its length, s")
    parser.add_argument("--max-staleness", type=float, default=600.0, help="simulated s")
    parser.add_argument("--reversing-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument(
        "--raw", default="", help="also write what each worker did here ({n}: N), to see why"
    )
    parser.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP)
    args = parser.parse_args()
    default = "30,300" if args.mode == "late-start" else "300"
    sizes = [int(x) for x in (args.securities or default).split(",")]
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    for n in sizes:
        if args.mode == "late-start":
            config = asyncio.run(late_start(args, n))
            lines, name = late_start_report(args, config), f"late_start-{n}"
        else:
            config = asyncio.run(outage(args, n))
            lines, name = outage_report(args, config), f"outage-{n}"
        if args.raw:
            Path(args.raw.format(n=n)).write_text(json.dumps(raw(config["pair"])))
        print("\n".join(lines), flush=True)
        update_section(name, lines)


if __name__ == "__main__":
    main()
