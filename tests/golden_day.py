"""The golden day: a recorded day and every flow and alert the worker's step gives for it.

``tests/data/golden/day.jsonl`` is a recording (``capflow record``'s format) of eight HK
securities from the simulator's market model: four reverse twice, two start after the
open with the day's capital flow first, two have a 20-minute hole in polling filled by
a capital-flow series. ``tests/data/golden/outputs.jsonl`` holds what the worker's
processing step (``streams.pipeline.processor``) publishes for it, byte for byte, and
each security's stored state at the end. ``tests/unit/test_golden_day.py`` holds the
code to them, so a change that is meant to keep behaviour keeps every byte.

A change that is meant to change what is published rewrites the outputs on purpose
(and says so in its commit):

    .venv/bin/python -m tests.golden_day --write
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from streams.offline.recording import read_recording
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pipeline.processor import SecurityProcessor
from streams.processing.thresholds import ThresholdConfig

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
DAY = GOLDEN / "day.jsonl"
OUTPUTS = GOLDEN / "outputs.jsonl"
NOW = 2e9  # the processor's clock: long after the day, as in a replay


def outputs(day: Path = DAY) -> Iterator[bytes]:
    """One line per published record (``flow``/``alert`` and its payload), in order,
    then ``state`` and each security's stored state."""
    proc = SecurityProcessor(ThresholdConfig(), clock=lambda: NOW)
    states = {}
    for msg in read_recording(day):
        state = states.setdefault(msg.security, proc.load(None, msg.security))
        key, value = msg.security.encode(), msg.SerializeToString()
        if isinstance(msg, DistributionSnapshot):
            outcomes = proc.take(state, proc.decode_polled(key, value))
        else:
            outcomes = proc.take(state, proc.decode_series(key, value))
        for outcome in outcomes:
            if outcome.flow is not None:
                yield b"flow " + outcome.flow
            for payload, _ in outcome.alerts():
                yield b"alert " + payload
    for security in sorted(states):
        yield b"state " + security.encode() + b" " + proc.dump(states[security])


def write_day(path: Path = DAY) -> int:
    """Record the day from the market model (done once; the file is the fixture)."""
    from bench.detection_delay import build_scenario
    from streams.domain.capital_flow import capital_flow_to_proto
    from streams.domain.snapshot_record import snapshot_to_proto
    from streams.offline.recording import Record, write_recording
    from streams.opend_sim.market import MarketModel

    scenario, length = build_scenario(8, 4, 11)
    model = MarketModel(scenario, 11)
    open_, source = scenario.start, "opend://rec:1"
    timed: list[tuple[float, Record]] = []

    def series(security: str, at: float) -> int:
        ref = int(at * 1000)
        timed.append((at, capital_flow_to_proto(model.capital_flow(security, at), source, ref, 0)))
        return ref

    for i, security in enumerate(scenario.securities):
        times = [open_ + 15 + k * 60.0 + 3 * i for k in range(int(length // 60.0))]
        refs = dict.fromkeys(times, 0)
        if i in (1, 5):  # started after the open: the day's minutes first
            times = [t for t in times if t >= open_ + 900]
            ref = series(security, times[0] - 1.0)
            refs = dict.fromkeys(times, ref)
        if i in (2, 6):  # a 20-minute hole, then the minutes that fill it
            times = [t for t in times if not open_ + 1500 <= t < open_ + 2700]
            after = [t for t in times if t >= open_ + 2700]
            ref = series(security, after[0] - 1.0)
            refs.update(dict.fromkeys(after, ref))
        for t in times:
            snap = model.distribution(security, t)
            timed.append((t, snapshot_to_proto(snap, source, int(t * 1000), 0, refs[t])))
    timed.sort(key=lambda item: item[0])
    with open(path, "wb") as out:
        write_recording(out, [record for _, record in timed])
    return len(timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite outputs.jsonl")
    parser.add_argument("--write-day", action="store_true", help="re-record day.jsonl first")
    args = parser.parse_args()
    if args.write_day:
        print(f"{DAY}: {write_day()} records")
    if args.write or args.write_day:
        OUTPUTS.write_bytes(b"".join(line + b"\n" for line in outputs()))
        print(f"{OUTPUTS} rewritten")


if __name__ == "__main__":
    main()
