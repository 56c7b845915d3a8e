"""Faults mid-stream: a second worker and the gateway owner's death, kill -9 and restart,
broker restart, OpenD drop. Each shows every scripted reversal alerted, none lost, none renamed,
and the OpenD budget never exceeded."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from streams.broker.local import LocalKafka, free_port_pair
from streams.kafka.topics import ensure_topics
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.opend_sim.scenario import Scenario, load_scenario
from streams.opend_sim.server import OpenDSimulator
from tests.integration.harness import (
    DATA,
    FAST_LIMIT,
    RequestLog,
    Topics,
    Worker,
    alerts_of,
    expected_reversals,
    read_topic,
    start_worker,
    wait_for,
    workers_stopped,
)

pytestmark = pytest.mark.integration

WATCHLIST = ["HK.00700", "HK.09988"]
# Simulated seconds per wall second under FAST_LIMIT (10 requests a second): each security
# is polled every 20 simulated seconds, the scenario's two flips come 9 s apart.
SPEED = 100.0


async def _sim(speed: float, **limits: Any) -> tuple[OpenDSimulator, Scenario, RequestLog]:
    scenario = load_scenario(DATA / "failover.json")
    sim = OpenDSimulator(
        MarketModel(scenario, seed=5), SimClock(start=scenario.start, speed=0.0), **limits
    )
    sim.speed_on_first_request = speed  # the scenario starts with the first poll
    log = RequestLog(sim)
    await sim.start()
    return sim, scenario, log


def _assert_each_reversal_alerted_once(alerts: list[dict[str, Any]], scenario: Scenario) -> None:
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for a in alerts:
        ids[(a["subject"], a["data"]["direction"])].add(a["id"])
    expected = expected_reversals(scenario)
    assert sorted(ids) == sorted((r.security, r.direction) for r in expected), alerts
    # A record may be re-sent after a crash, but always under the same id.
    assert all(len(v) == 1 for v in ids.values()), ids
    for r in expected:
        times = [a["data"]["event_ts"] for a in alerts if a["subject"] == r.security]
        assert all(t > r.epoch for t in times), (r, times)


def _two_alerts(records: list[Any]) -> bool:
    return len({(a["subject"], a["data"]["direction"]) for a in alerts_of(records)}) >= 2


async def _first_alert(bootstrap: str, topics: Topics, *workers: Worker) -> None:
    got = await read_topic(
        bootstrap, topics.names["alerts"], until=lambda r: len(r) >= 1, timeout=180
    )
    assert got, "no alert before the fault:\n" + "\n".join(w.tail() for w in workers)


async def test_second_worker_and_owner_death_keep_budget_and_alerts(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Two workers, one gateway, one budget (15 requests per 5 s at the simulator and the
    workers alike, the real 30 per 30 s scaled down): only the gateway's owner polls;
    kill -9 it and the other takes over after a one-window grace without a single
    over-limit request. Each security is polled every 40 simulated seconds."""
    limit, window = 15, 5.0
    sim, scenario, requests = await _sim(
        speed=60.0, rate_limit_requests=limit, rate_limit_window=window
    )
    topics = Topics(topic_prefix)
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, list(topics.names.values()), 3)
    app_id = f"capflow-{uuid.uuid4().hex[:8]}"
    common = [
        "--rate-limit-requests", str(limit), "--rate-limit-window", str(window),
        "--session-timeout", "6",
    ]  # fmt: skip
    w1 = start_worker(kafka_bootstrap, topics, app_id, tmp_path, opend_port=sim.port,
                      watchlist=WATCHLIST, name="w1", extra=common)  # fmt: skip
    w2 = start_worker(kafka_bootstrap, topics, app_id, tmp_path, opend_port=sim.port,
                      watchlist=WATCHLIST, name="w2", extra=common)  # fmt: skip
    with workers_stopped(w1, w2):
        await _first_alert(kafka_bootstrap, topics, w1, w2)
        # Exactly one worker is polling now: the one the gateway group assigned it.
        since = time.monotonic()
        await wait_for(
            lambda: len([t for t in requests.times if t >= since]) >= 6,
            30,
            "requests after the first alert",
        )
        (owner_pid,) = requests.pids(since)
        owner, survivor = (w1, w2) if owner_pid == w1.pid else (w2, w1)
        assert owner.pid == owner_pid, (owner_pid, w1.pid, w2.pid)
        steady = [t for t in requests.times if t > requests.times[0] + window]
        owner.kill()
        killed_at = time.monotonic()
        await wait_for(
            lambda: survivor.pid in requests.pids(killed_at),
            120,
            "the surviving worker to take over polling",
        )
        takeover = (requests.first_by(survivor.pid, killed_at) or killed_at) - killed_at
        records = await read_topic(
            kafka_bootstrap, topics.names["alerts"], until=_two_alerts, timeout=180, settle=3
        )
        assert survivor.running(), survivor.tail()
    await sim.stop()

    _assert_each_reversal_alerted_once(alerts_of(records), scenario)
    assert requests.refused == 0
    assert requests.max_in_window(window) <= limit
    assert requests.owner_runs(since) == [owner.pid, survivor.pid]  # one handover, no return
    # While one owner polled undisturbed, it used the budget (~3 requests per second).
    span = steady[-1] - steady[0] if len(steady) > 1 else 0
    assert span > 5 and len(steady) / span > 0.9 * limit / window, (len(steady), span)
    # The new owner waits one window (OpenD counts per account, not per worker).
    assert takeover >= window


async def test_worker_kill9_and_restart_resume_state(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    sim, scenario, _ = await _sim(speed=SPEED, rate_limit_requests=100, rate_limit_window=10)
    topics = Topics(topic_prefix)
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, list(topics.names.values()), 3)
    app_id = f"capflow-{uuid.uuid4().hex[:8]}"
    extra = [*FAST_LIMIT, "--session-timeout", "6"]  # the dead member leaves the group soon
    w1 = start_worker(kafka_bootstrap, topics, app_id, tmp_path, opend_port=sim.port,
                      watchlist=WATCHLIST, name="w1", extra=extra)  # fmt: skip
    with workers_stopped(w1):
        await _first_alert(kafka_bootstrap, topics, w1)
        w1.kill()
    w2 = start_worker(kafka_bootstrap, topics, app_id, tmp_path, opend_port=sim.port,
                      watchlist=WATCHLIST, name="w2", extra=extra)  # fmt: skip
    with workers_stopped(w2):
        records = await read_topic(
            kafka_bootstrap, topics.names["alerts"], until=_two_alerts, timeout=180, settle=3
        )
        assert w2.proc.poll() is None, w2.tail()
    await sim.stop()
    _assert_each_reversal_alerted_once(alerts_of(records), scenario)


async def test_broker_restart_mid_stream(topic_prefix: str, tmp_path: Path) -> None:
    """A broker of its own, stopped and started again under a running worker."""
    broker = LocalKafka(tmp_path / "kafka", port=free_port_pair())
    broker.start(progress=False)
    try:
        sim, scenario, requests = await _sim(
            speed=SPEED, rate_limit_requests=100, rate_limit_window=10
        )
        topics = Topics(topic_prefix)
        await ensure_topics({"bootstrap_servers": broker.bootstrap}, list(topics.names.values()), 3)
        w = start_worker(broker.bootstrap, topics, f"capflow-{uuid.uuid4().hex[:8]}", tmp_path,
                         opend_port=sim.port, watchlist=WATCHLIST, extra=FAST_LIMIT)  # fmt: skip
        with workers_stopped(w):
            await _first_alert(broker.bootstrap, topics, w)
            await asyncio.to_thread(broker.stop)
            # The outage reaches the poller: it waits on a snapshot the broker has not
            # acknowledged, spending no budget (a second is ten requests at FAST_LIMIT).
            # (An outage longer than the publisher's request timeout: test_publisher_outage.)
            await wait_for(
                lambda: time.monotonic() - requests.times[-1] >= 1.0,
                60,
                "the poller to wait out the outage",
            )
            await asyncio.to_thread(broker.start, progress=False)
            records = await read_topic(
                broker.bootstrap, topics.names["alerts"], until=_two_alerts, timeout=180, settle=3
            )
            assert w.proc.poll() is None, w.tail()
        await sim.stop()
    finally:
        broker.stop()
    _assert_each_reversal_alerted_once(alerts_of(records), scenario)


async def test_opend_drop_and_return(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    sim, scenario, requests = await _sim(speed=SPEED, rate_limit_requests=100, rate_limit_window=10)
    topics = Topics(topic_prefix)
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, list(topics.names.values()), 3)
    w = start_worker(kafka_bootstrap, topics, f"capflow-{uuid.uuid4().hex[:8]}", tmp_path,
                     opend_port=sim.port, watchlist=WATCHLIST, extra=FAST_LIMIT)  # fmt: skip
    with workers_stopped(w):
        await _first_alert(kafka_bootstrap, topics, w)
        await sim.stop()
        before = len(requests.times)
        # The worker has noticed: the gateway no longer accepts connections.
        await w.wait_output(f"gateway 127.0.0.1:{sim.port} does not answer", 30)
        await sim.start()  # same port
        await wait_for(lambda: len(requests.times) > before, 60, "polling to resume")
        records = await read_topic(
            kafka_bootstrap, topics.names["alerts"], until=_two_alerts, timeout=180, settle=3
        )
        assert w.proc.poll() is None, w.tail()
    await sim.stop()
    _assert_each_reversal_alerted_once(alerts_of(records), scenario)
    assert "connected to opend://" in w.log.read_text()
