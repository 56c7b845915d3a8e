"""Replay throughput: raw consumer vs the full worker pipeline vs the processing core.

Generates N snapshots (default 100,000 over 1,000 securities, one every 30 s of event
time per security, so 10 per 300 s window; cumulative amounts only grow) into a fresh
snapshot topic, then measures in the same run:

1. the processing core alone: ``SecurityProcessor.decode`` + ``process`` in a loop
   with a dict as the table;
2. a raw ``AIOKafkaConsumer`` reading the topic and decoding each protobuf;
3. the full pipeline: ``capflow worker --no-poller`` (memory store) consuming the
   topic until it has written one flow record per snapshot;
4. the floor under any Faust worker: ``bench.faust_floor``, an agent with the worker's
   batching that does nothing with its records.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import (
    DEFAULT_BOOTSTRAP,
    ROOT,
    Topics,
    create_topics,
    delete_topics,
    fmt,
    free_port,
    header_lines,
    prefixed_topics,
    run_prefix,
    start_worker,
    table,
    update_section,
)
from streams.opend.snapshot import AMOUNT_FIELDS
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pipeline.app import BATCH_MAX, BATCH_WITHIN_S, PRODUCER_LINGER_MS, PRODUCER_MAX_BATCH
from streams.pipeline.processor import SecurityProcessor
from streams.processing.thresholds import ThresholdConfig

HK = ZoneInfo("Asia/Hong_Kong")
DAY_START = datetime(2024, 6, 3, 9, 30, tzinfo=HK).timestamp()


def generate(securities: int, per_security: int, step: float, seed: int = 7) -> list[tuple]:
    """(key, value) records in poll order: time outer, security inner; amounts only grow."""
    rng = random.Random(seed)
    names = [f"HK.{i:05d}" for i in range(1, securities + 1)]
    totals = {n: [0.0] * 8 for n in names}
    drift = {n: rng.uniform(-0.3, 0.3) for n in names}
    out: list[tuple[bytes, bytes]] = []
    seq = 0
    for k in range(per_security):
        t = DAY_START + (k + 1) * step
        for name in names:
            d = drift[name] = max(-0.6, min(0.6, 0.9 * drift[name] + rng.uniform(-0.2, 0.2)))
            amounts = totals[name]
            for i in range(8):
                base = rng.uniform(5e4, 2e5) * step
                tilt = d if i % 4 < 2 else 0.3 * d
                amounts[i] += base * (1 + tilt if i < 4 else 1 - tilt)
            seq += 1
            msg = DistributionSnapshot(
                security=name,
                market="HK",
                qot_market=1,
                code=name[3:],
                **{f: round(v, 2) for f, v in zip(AMOUNT_FIELDS, amounts, strict=True)},
                update_time=datetime.fromtimestamp(t, HK).strftime("%Y-%m-%d %H:%M:%S"),
                update_timestamp=t,
                trading_day="2024-06-03",
                received_at_ms=int(time.time() * 1000),
                source="bench://replay",
                poll_seq=seq,
            )
            out.append((name.encode(), msg.SerializeToString()))
    return out


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    """Write all records (batched, acks=all); seconds taken."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    t0 = time.perf_counter()
    try:
        for i in range(0, len(records), 5000):
            futs = [
                await producer.send(topic, value, key=key) for key, value in records[i : i + 5000]
            ]
            await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return time.perf_counter() - t0


def core(records: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """SecurityProcessor.decode + process over all records with a dict as the table."""
    proc = SecurityProcessor(ThresholdConfig())
    state: dict[bytes, bytes | None] = {}
    flows = alerts = state_bytes = 0
    t0 = time.perf_counter()
    for key, value in records:
        snap = proc.decode(key, value)
        out = proc.process(state.get(key), snap)
        if out.state is not None:
            state[key] = out.state
        flows += out.flow is not None
        alerts += out.alert is not None
    elapsed = time.perf_counter() - t0
    state_bytes = sum(len(v) for v in state.values() if v)
    return {
        "seconds": elapsed,
        "flows": flows,
        "alerts": alerts,
        "mean_state_bytes": state_bytes / max(len(state), 1),
    }


async def raw_consume(bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    """Read the topic from the start with one consumer and decode every value."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    t_start = time.perf_counter()
    await consumer.start()
    t_started = time.perf_counter()
    count = 0
    try:
        while count < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10000)
            for recs in batch.values():
                for rec in recs:
                    DistributionSnapshot.FromString(rec.value)
                    count += 1
    finally:
        await consumer.stop()
    t_end = time.perf_counter()
    return {"count": count, "seconds": t_end - t_start, "reading": t_end - t_started}


async def pipeline(
    bootstrap: str, topics: Topics, prefix: str, n_flows: int, timeout: float
) -> dict[str, Any]:
    """Start a --no-poller worker on the filled topic; time until all flows are written."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    consumer = AIOKafkaConsumer(
        topics.flow, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    worker = start_worker(
        bootstrap, topics, f"{prefix}-app", workdir, extra=["--no-poller", "--store", "memory://"]
    )
    count = 0
    first_ts = last_ts = 0
    first_read = last_read = 0.0
    ready = None

    async def ready_at() -> float:
        await worker.wait_output("Worker ready", timeout)
        return time.time()

    try:
        ready_task = asyncio.create_task(ready_at())
        deadline = time.monotonic() + timeout
        while count < n_flows and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=10000)
            now = time.time()
            for recs in batch.values():
                for rec in recs:
                    if count == 0:
                        first_ts, first_read = rec.timestamp, now
                    first_ts = min(first_ts, rec.timestamp)
                    last_ts = max(last_ts, rec.timestamp)
                    count += 1
                    last_read = now
            if worker.proc.poll() is not None:
                raise RuntimeError(f"worker exited:\n{worker.tail()}")
        ready = await ready_task if ready_task.done() else None
        if ready is None:
            ready_task.cancel()
    finally:
        await consumer.stop()
        worker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "count": count,
        "started": worker.started,
        "ready": ready,
        "first_ts": first_ts / 1000,
        "last_ts": last_ts / 1000,
        "first_read": first_read,
        "last_read": last_read,
    }


def faust_floor(bootstrap: str, topic: str, prefix: str, n: int, timeout: float) -> dict[str, Any]:
    """Run ``bench.faust_floor`` over the topic; its records and seconds (first batch excluded)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-floor-"))
    try:
        cmd = [
            sys.executable, "-m", "bench.faust_floor", "--bootstrap", bootstrap,
            "--topic", topic, "--count", str(n), "--app-id", f"{prefix}-floor",
            "--datadir", str(workdir), "--web-port", str(free_port()),
        ]  # fmt: skip
        out = subprocess.run(
            cmd,
            capture_output=True,
            timeout=timeout,
            cwd=ROOT,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    # Faust routes a worker's stdout into its log: find the JSON line wherever it went.
    text = out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")
    match = re.search(r'\{"count":\d+,"seconds":[0-9.e-]+\}', text)
    if not match:
        raise RuntimeError(f"faust_floor gave no result:\n{text[-2000:]}")
    result: dict[str, Any] = orjson.loads(match.group(0))
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    prefix = run_prefix("replay")
    topics = Topics(prefix)
    await create_topics(args.bootstrap, topics.all())
    try:
        t0 = time.perf_counter()
        records = generate(args.securities, args.snapshots // args.securities, args.step)
        gen_s = time.perf_counter() - t0
        produce_s = await produce(args.bootstrap, topics.distribution, records)
        print(f"generated {len(records)} in {gen_s:.1f}s, produced in {produce_s:.1f}s")
        c = core(records)
        print(f"core: {len(records) / c['seconds']:.0f}/s")
        raw = await raw_consume(args.bootstrap, topics.distribution, len(records))
        print(f"raw consumer: {raw['count'] / raw['reading']:.0f}/s")
        pipe = await pipeline(args.bootstrap, topics, prefix, c["flows"], args.timeout)
        print(f"pipeline: {pipe['count']} flows")
        floor = faust_floor(args.bootstrap, topics.distribution, prefix, len(records), args.timeout)
        print(f"faust floor: {floor['count'] / floor['seconds']:.0f}/s")
    finally:
        await delete_topics(args.bootstrap, await prefixed_topics(args.bootstrap, prefix))
    return {
        "n": len(records),
        "securities": args.securities,
        "step": args.step,
        "produce_s": produce_s,
        "core": c,
        "raw": raw,
        "pipe": pipe,
        "floor": floor,
    }


def report(r: dict[str, Any]) -> list[str]:
    n, c, raw, pipe = r["n"], r["core"], r["raw"], r["pipe"]
    core_rate = n / c["seconds"]
    raw_rate = raw["count"] / raw["reading"]
    raw_total_rate = raw["count"] / raw["seconds"]
    complete = pipe["count"] >= c["flows"]
    span_ts = pipe["last_ts"] - pipe["first_ts"]
    pipe_rate = pipe["count"] / span_ts if span_ts > 0 else float("nan")
    ready_to_last = pipe["last_read"] - pipe["ready"] if pipe["ready"] else float("nan")
    pipe_ready_rate = pipe["count"] / ready_to_last if pipe["ready"] else float("nan")
    start_to_last = pipe["last_read"] - pipe["started"]
    floor = r["floor"]
    floor_rate = floor["count"] / floor["seconds"]
    rows = [
        [
            "processing core (decode + process, dict table)",
            n,
            f"{c['seconds']:.2f}",
            fmt(core_rate, 0),
        ],
        [
            "raw aiokafka consumer + protobuf decode (after start() to last record)",
            raw["count"],
            f"{raw['reading']:.2f}",
            fmt(raw_rate, 0),
        ],
        [
            "raw consumer incl. start()",
            raw["count"],
            f"{raw['seconds']:.2f}",
            fmt(raw_total_rate, 0),
        ],
        [
            "worker pipeline: first to last flow (Kafka timestamps)",
            pipe["count"],
            f"{span_ts:.2f}",
            fmt(pipe_rate, 0),
        ],
        [
            "worker pipeline: 'Worker ready' to last flow read",
            pipe["count"],
            fmt(ready_to_last, 2),
            fmt(pipe_ready_rate, 0),
        ],
        [
            "worker pipeline: process start to last flow read",
            pipe["count"],
            f"{start_to_last:.2f}",
            fmt(pipe["count"] / start_to_last, 0),
        ],
        [
            "Faust agent doing nothing (bench.faust_floor, same batching)",
            floor["count"],
            f"{floor['seconds']:.2f}",
            fmt(floor_rate, 0),
        ],
    ]
    lines = [
        "### Replay throughput",
        "",
        *header_lines(),
        f"Setup: {n:,} generated snapshots over {r['securities']:,} securities (one every "
        f"{r['step']:g} s of event time per security, {300 / r['step']:g} per 300 s window, "
        "cumulative amounts only grow, drifting large-order net), written to a fresh "
        f"3-partition topic ({r['produce_s']:.1f} s with acks=all). The core run produced "
        f"{c['flows']:,} flows and {c['alerts']:,} alerts (default thresholds); mean state "
        f"blob {c['mean_state_bytes']:,.0f} bytes after the run. The worker is "
        "`capflow worker --no-poller --store memory://` (3 partitions, one worker); its "
        "rate counts flow records on the flow topic. The worker takes records in batches "
        f"(`take_events`, up to {BATCH_MAX:,} within {BATCH_WITHIN_S * 1000:g} ms), keeps "
        "each security's state as objects within a batch, sends flows straight to the "
        f"producer ({PRODUCER_LINGER_MS} ms linger, {PRODUCER_MAX_BATCH // 1024} kB batches) "
        "and stores each state once per batch after the batch's alerts are acknowledged.",
        "",
        *table(["stage", "records", "seconds", "records/s"], rows),
        "",
    ]
    if not complete:
        lines += [
            f"The pipeline did not finish within the timeout: {pipe['count']:,} of "
            f"{c['flows']:,} flows were seen; its rates cover those only.",
            "",
        ]
    lines += [
        *table(
            ["ratio", "value"],
            [
                ["pipeline / raw consumer", fmt(pipe_rate / raw_rate, 3)],
                ["pipeline / processing core", fmt(pipe_rate / core_rate, 3)],
                ["processing core / raw consumer", fmt(core_rate / raw_rate, 3)],
                ["Faust floor / processing core", fmt(floor_rate / core_rate, 3)],
                ["pipeline / Faust floor", fmt(pipe_rate / floor_rate, 3)],
            ],
        ),
        "",
        f"Interpretation: the worker sustains {fmt(pipe_rate, 0)} snapshots/s, "
        f"{fmt(pipe_rate / core_rate, 2)}x the processing core "
        f"({'meets' if pipe_rate >= 0.5 * core_rate else 'short of'} the 0.5x target). "
        f"Per record the worker spends {fmt(1e6 / pipe_rate, 0)} us: "
        f"{fmt(1e6 / floor_rate, 0)} us is Faust's own per-record machinery (an agent "
        "that does nothing with its records, same topic and batching), at most "
        f"{fmt(1e6 / core_rate, 0)} us the processing step (less in the worker, which "
        "decodes a security's JSON state once per batch), and the remaining "
        f"{fmt(1e6 / pipe_rate - 1e6 / floor_rate - 1e6 / core_rate, 0)} us or more goes "
        "to producing two records per snapshot (the flow, and the changelog record of the "
        "state: 1,000 securities polled in turn rarely repeat within a batch, so nearly "
        "every record stores its state) through aiokafka and Faust's producer, with the "
        "broker on the same 2 cores. Those two bounds, not the processing, keep the "
        "pipeline where it is. Reading and decoding alone is not the bottleneck "
        f"({fmt(raw_rate / pipe_rate, 1)}x the pipeline rate).",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=100_000)
    parser.add_argument("--securities", type=int, default=1_000)
    parser.add_argument("--step", type=float, default=30.0, help="event seconds between polls")
    parser.add_argument("--timeout", type=float, default=600.0, help="pipeline timeout, s")
    parser.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP)
    args = parser.parse_args()
    lines = report(asyncio.run(run(args)))
    print("\n".join(lines))
    update_section("replay_throughput", lines)


if __name__ == "__main__":
    main()
