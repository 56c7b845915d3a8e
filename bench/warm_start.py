"""A worker that starts after the open: its alerts against a worker that ran since the open.

The scenario is detection_delay's (N securities, half of them reversing twice, the rest
noise only), computed by the simulator's market model. For every security, in one run:

- continuous: a snapshot every ``--poll`` seconds from the open (the reference);
- warm start with minute history: the same snapshots from ``--start`` on, the day's
  capital flow (3211, the same model) fetched just before the first of them;
- warm start without history: the same snapshots from ``--start`` on, nothing else.

All three go through the worker's processing step (streams.pipeline.processor), so the
numbers are the worker's. Reported: alerts from the start on that equal the reference's
(same alert id), extra ones (the reference never sent them), missed ones, and how long
after the start the first R_W was known; and the cost of folding one series in (the
minute replay), beside the cost of one snapshot.

    .venv/bin/python -m bench.warm_start [--n 300] [--starts 900,1500,2400] [--poll 60]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import fmt, header_lines, table, update_section
from bench.detection_delay import build_scenario
from streams.domain.capital_flow import capital_flow_to_proto
from streams.domain.snapshot_record import snapshot_to_proto
from streams.opend_sim.market import MarketModel
from streams.pipeline.processor import Outcome, Polled, SecurityProcessor
from streams.processing.backfill import MinuteSeries
from streams.processing.events import parse_alert, parse_flow
from streams.processing.thresholds import ThresholdConfig


@dataclass
class Variant:
    """What one way of starting gave, summed over the securities."""

    name: str
    same: int = 0
    extra: int = 0
    missed: int = 0
    first_r_w: list[float] = field(default_factory=list)  # seconds after the start


def alert_ids(outcomes: list[Outcome], since: float) -> set[str]:
    ids = set()
    for outcome in outcomes:
        for payload, _ in outcome.alerts():
            alert = parse_alert(payload)
            if alert["data"]["event_ts"] >= since:
                ids.add(alert["id"])
    return ids


def first_change(outcomes: list[Outcome], start: float) -> float | None:
    for outcome in outcomes:
        if outcome.flow is not None:
            flow = parse_flow(outcome.flow)
            if flow["baseline"] != "none":
                return float(flow["event_ts"]) - start
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="securities (default 300)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--starts",
        default="900,1500,2400",
        help="late starts, seconds after the open, comma-separated (default 900,1500,2400: "
        "among the first flips, between the flips, among the second flips)",
    )
    parser.add_argument("--poll", type=float, default=60.0, help="seconds between snapshots")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()

    scenario, length = build_scenario(args.n, args.n // 2, args.seed)
    model = MarketModel(scenario, args.seed)
    proc = SecurityProcessor(ThresholdConfig(), clock=lambda: scenario.start + 86400)
    rows: list[list[Any]] = []
    fold_s: list[float] = []
    snapshot_s: list[float] = []
    for offset in (float(x) for x in args.starts.split(",")):
        variants, reference_alerts = compare(
            scenario, model, proc, length, args.poll, offset, fold_s, snapshot_s
        )
        for v in variants.values():
            delays = v.first_r_w
            rows.append(
                [
                    f"{offset:g} s",
                    reference_alerts,
                    v.name,
                    v.same,
                    v.extra,
                    v.missed,
                    fmt(statistics.median(delays)) if delays else "-",
                    fmt(max(delays)) if delays else "-",
                ]
            )
    lines = [
        *header_lines(),
        "",
        f"N = {args.n} securities ({args.n // 2} reversing twice, first flips 600-1200 s after "
        f"the open, second ones 1500-1800 s later), a snapshot every {args.poll:g} s, "
        "W = 300 s; reference: the alerts a worker running since the open sends from the "
        "late start on.",
        "",
        *table(
            [
                "late start",
                "reference alerts",
                "late worker",
                "same alerts",
                "extra alerts",
                "missed alerts",
                "first R_W after start, median s",
                "max s",
            ],
            rows,
        ),
        "",
        f"Folding a day's minute history in (decoded; fold + minute replay, median of "
        f"{len(fold_s)}): {fmt(statistics.median(fold_s) * 1e3, 2)} ms, against "
        f"{fmt(statistics.median(snapshot_s) * 1e6, 1)} us for one snapshot: "
        f"{fmt(statistics.median(fold_s) / statistics.median(snapshot_s), 0)}x, "
        "once per security and start.",
    ]
    print("\n".join(lines))
    if not args.no_write:
        update_section("Warm start", lines)


def compare(
    scenario: Any,
    model: MarketModel,
    proc: SecurityProcessor,
    length: float,
    poll: float,
    offset: float,
    fold_s: list[float],
    snapshot_s: list[float],
) -> tuple[dict[str, Variant], int]:
    """Every security started ``offset`` seconds after the open, with and without
    history, against the reference; the variants and the reference's alert count."""
    open_ = scenario.start
    start = open_ + offset
    times = [open_ + k * poll for k in range(int(length // poll) + 1)]
    late = [t for t in times if t >= start]
    variants = {name: Variant(name) for name in ("with history", "without history")}
    reference_alerts = 0

    def polled(security: str, t: float, ref: int = 0) -> Polled:
        record = snapshot_to_proto(model.distribution(security, t), "bench", int(t * 1000), 0, ref)
        return proc.decode_polled(security.encode(), record.SerializeToString())

    for security in scenario.securities:
        state = proc.load(None, security)
        reference = [o for t in times for o in proc.take(state, polled(security, t))]
        want = alert_ids(reference, start)
        reference_alerts += len(want)

        series_at = start - 1.0
        received = int(series_at * 1000)
        record = capital_flow_to_proto(model.capital_flow(security, series_at), "b", received, 0)
        minutes: MinuteSeries = proc.decode_series(security.encode(), record.SerializeToString())
        warm = proc.load(None, security)
        runs: dict[str, list[Outcome]] = {"with history": proc.take(warm, minutes)}
        first = polled(security, late[0], received)
        began = time.perf_counter()
        runs["with history"] += proc.take(warm, first)  # folds the series in, replays
        fold_s.append(time.perf_counter() - began)
        for t in late[1:]:
            runs["with history"] += proc.take(warm, polled(security, t, received))
        cold = proc.load(None, security)
        runs["without history"] = []
        for t in late:
            snap = polled(security, t)
            began = time.perf_counter()
            runs["without history"] += proc.take(cold, snap)
            snapshot_s.append(time.perf_counter() - began)

        for name, outcomes in runs.items():
            got = alert_ids(outcomes, start)
            variant = variants[name]
            variant.same += len(got & want)
            variant.extra += len(got - want)
            variant.missed += len(want - got)
            delay = first_change(outcomes, start)
            if delay is not None:
                variant.first_r_w.append(delay)
    return variants, reference_alerts


if __name__ == "__main__":
    main()
