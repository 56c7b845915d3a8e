"""SIGTERM stops polling at once and the worker exits in bounded time, even with the
broker gone: a replacement worker must never share a gateway's budget with one that
is still on its way out.

The signal comes while the worker polls, and the broker dies right after it: during
an outage the poller already waits on a snapshot the broker has not acknowledged and
sends nothing, so a signal sent then could not show that the signal stops polling."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import pytest

from streams.broker.local import LocalKafka, free_port_pair
from streams.kafka.topics import ensure_topics
from tests.integration.harness import (
    RequestLog,
    Topics,
    start_scenario_sim,
    start_worker,
    wait_for,
    workers_stopped,
)

pytestmark = pytest.mark.integration

# A stopping worker waits this long for Kafka, then exits anyway (--shutdown-timeout;
# 15 s by default): the test's bound is that plus slack for a loaded machine.
SHUTDOWN_TIMEOUT_S = 5.0
EXIT_BOUND_S = SHUTDOWN_TIMEOUT_S + 10.0
# A request already on its way when the signal came reaches the simulator a little later.
IN_FLIGHT_S = 0.05


async def test_sigterm_during_broker_outage_stops_polling_and_exits(
    topic_prefix: str, tmp_path: Path
) -> None:
    broker = LocalKafka(tmp_path / "kafka", port=free_port_pair())
    broker.start(progress=False)
    try:
        sim, _ = await start_scenario_sim(requests=20, window=10)
        requests = RequestLog(sim)
        topics = Topics(topic_prefix)
        await ensure_topics({"bootstrap_servers": broker.bootstrap}, list(topics.names.values()), 3)
        w = start_worker(
            broker.bootstrap, topics, f"capflow-{uuid.uuid4().hex[:8]}", tmp_path,
            opend_port=sim.port, watchlist=["HK.00700", "HK.09988"],
            extra=["--rate-limit-requests", "20", "--rate-limit-window", "10",
                   "--no-leader-grace", "--session-timeout", "6",
                   "--shutdown-timeout", str(SHUTDOWN_TIMEOUT_S)],
        )  # fmt: skip
        with workers_stopped(w):
            await wait_for(lambda: len(requests.times) >= 3, 120, "polling to start")
            sent_at = time.monotonic()
            w.proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(broker.kill)
            try:
                await asyncio.to_thread(w.proc.wait, EXIT_BOUND_S)
            except Exception:
                pytest.fail(f"worker still running {EXIT_BOUND_S}s after SIGTERM:\n{w.tail()}")
            after = [t for t in requests.times if t > sent_at + IN_FLIGHT_S]
        await sim.stop()
    finally:
        broker.stop()
    assert after == [], f"{len(after)} OpenD requests after SIGTERM:\n{w.tail()}"
