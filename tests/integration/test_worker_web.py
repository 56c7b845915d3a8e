"""A running worker over HTTP: Prometheus metrics, per-security state, unknown securities."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.kafka.topics import ensure_topics
from tests.integration.harness import (
    FAST_LIMIT,
    Topics,
    read_topic,
    start_scenario_sim,
    start_worker,
    wait_for,
    workers_stopped,
)

pytestmark = pytest.mark.integration

SPEED = 30.0  # slow: HK.00700 must still be in its opening inflow when checked
KNOWN = ["HK.00700", "HK.09988"]
UNKNOWN = "HK.99999"  # the simulator answers "unknown stock"


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Prometheus exposition -> {(sample name, labels): value}."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def by_name(metrics: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """{sorted (label, value) pairs: sample value} of one sample name."""
    return {tuple(sorted(labels)): v for (n, labels), v in metrics.items() if n == name}


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with session.get(url) as resp:
        return resp.status, await resp.read()


async def test_metrics_state_view_and_unknown_security(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    sim, scenario = await start_scenario_sim()
    clock = sim.clock  # frozen until the worker polls
    topics = Topics(topic_prefix)
    names = topics.names
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, list(names.values()), 3)
    watchlist = [KNOWN[0], UNKNOWN, KNOWN[1]]
    worker = start_worker(
        kafka_bootstrap, topics, f"capflow-{uuid.uuid4().hex[:8]}", tmp_path,
        opend_port=sim.port, watchlist=watchlist, extra=FAST_LIMIT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{worker.web_port}"
    try:
        with workers_stopped(worker):
            try:
                await wait_for(lambda: sim.counts[3212] > 0, 120, "the worker's first request")
            except AssertionError:
                raise AssertionError(worker.tail()) from None
            clock.set(scenario.start, speed=SPEED)

            def flows_per_security(recs: list[Any]) -> Counter[str]:
                return Counter(orjson.loads(r.value)["security"] for r in recs)

            # Both known securities keep flowing although the unknown one was rejected.
            flows = await read_topic(
                kafka_bootstrap,
                names["flow"],
                until=lambda recs: all(flows_per_security(recs)[s] >= 8 for s in KNOWN),
                timeout=60,
            )
            per_security = flows_per_security(flows)
            assert all(per_security[s] >= 8 for s in KNOWN), (per_security, worker.tail())
            assert set(per_security) == set(KNOWN)

            # Freeze the market: later polls are duplicates, so the state stops moving.
            clock.set(clock.now(), speed=0.0)
            frozen_at = int(clock.now())

            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                status, body = await get(http, f"{base}/metrics/")
                assert status == 200, body[:500]
                metrics = samples(body.decode())

                requests = by_name(metrics, "capflow_opend_requests_total")
                assert requests[(("outcome", "ok"), ("protocol", "3212"))] > 0, requests
                # The unknown security cost exactly one capital-distribution request, then
                # it was dropped (its capital flow, asked for once too, was refused alike).
                assert requests[(("outcome", "rejected"), ("protocol", "3212"))] == 1, requests

                budget = by_name(metrics, "capflow_opend_budget")
                assert budget[(("kind", "limit"),)] == 100
                assert 0 <= budget[(("kind", "used"),)] <= 100

                staleness = by_name(metrics, "capflow_snapshot_staleness_seconds")
                assert {labels[0][1] for labels in staleness} == set(KNOWN), staleness
                assert all(0 <= v < 30 for v in staleness.values()), staleness

                lag = by_name(metrics, "capflow_consumer_lag")
                assert {labels[0][1] for labels in lag} == {
                    f"{names['distribution']}/{p}" for p in range(3)
                }, lag
                assert all(v >= 0 for v in lag.values())

                processed = by_name(metrics, "capflow_snapshots_processed_total")
                assert processed[(("result", "flow"),)] >= 16, processed

                # The stored state of HK.00700 catches up with the frozen market.
                state: dict[str, Any] = {}

                async def state_caught_up() -> bool:
                    nonlocal state
                    status, body = await get(http, f"{base}/flow/HK.00700/")
                    if status != 200:
                        return False
                    state = orjson.loads(body)
                    return bool(state["flow"]["last_ts"] == frozen_at)

                deadline = time.monotonic() + 30
                while not await state_caught_up():
                    assert time.monotonic() < deadline, (state, worker.tail())
                    await asyncio.sleep(0.3)

                assert state["security"] == "HK.00700"
                flow, detector = state["flow"], state["detector"]
                assert flow["trading_day"] == "2024-06-03" == detector["trading_day"]
                assert flow["window"] == 300.0
                assert flow["history"] and flow["history"][-1][0] == frozen_at
                assert detector["last_ts"] == frozen_at
                assert detector["regime"] in ("NEUTRAL", "INFLOW", "OUTFLOW")
                # HK.00700 has a large inflow from the open until its flip at 900 s.
                if frozen_at < scenario.start + 900:
                    assert detector["regime"] == "INFLOW", state

                # The last flow record of HK.00700 agrees with the stored state.
                latest = await read_topic(
                    kafka_bootstrap,
                    names["flow"],
                    until=lambda recs: any(
                        orjson.loads(r.value)["event_ts"] == frozen_at and r.key == b"HK.00700"
                        for r in recs
                    ),
                    timeout=30,
                )
                last = [orjson.loads(r.value) for r in latest if r.key == b"HK.00700"][-1]
                assert last["event_ts"] == frozen_at
                assert last["regime"] == detector["regime"]
                assert last["threshold"] == pytest.approx(detector["threshold"])

                for missing in (UNKNOWN, "HK.01810"):
                    status, body = await get(http, f"{base}/flow/{missing}/")
                    assert status == 404, (missing, body[:300])
                    assert orjson.loads(body) == {"security": missing, "error": "no state"}

            assert worker.proc.poll() is None, "the worker died:\n" + worker.tail()
    finally:
        await sim.stop()

    log = worker.log.read_text(errors="replace")
    skipped = [line for line in log.splitlines() if f"skipping {UNKNOWN}" in line]
    assert len(skipped) == 1, worker.tail(80)
    assert "unknown stock" in skipped[0]
    assert "ERROR" in skipped[0]
