"""The stall watchdog against the real broker, with workers whose processing is made to
crawl or hang (``tests.integration.stalling_worker``).

A partition with lag whose records stop being processed for ``--stall-timeout`` seconds
is logged with its lag and counted, and the worker exits with status 1 for its
supervisor to restart it (``--stall-action log``: it goes on). A worker that is idle,
or slow but still processing, is left alone.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams.kafka.topics import ensure_topics
from tests.integration.harness import (
    Topics,
    Worker,
    metric,
    minute_snapshot,
    read_topic,
    start_worker,
    wait_for,
    workers_stopped,
)
from tests.integration.stalling_worker import HANG, SLOW, WEDGE

pytestmark = pytest.mark.integration

MODULE = "tests.integration.stalling_worker"
TIMEOUT = 2.0  # --stall-timeout of these workers
SEC = "HK.00700"


def records(security: str, minutes: range) -> list[tuple[bytes, bytes]]:
    return [(security.encode(), minute_snapshot(m, security)) for m in minutes]


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """(key, value) records, in order, all on partition 0 and in one request if they fit
    (so the worker takes them in one batch)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=50)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key, partition=0) for key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def stalling_topics(bootstrap: str, prefix: str) -> Topics:
    topics = Topics(prefix)
    await ensure_topics({"bootstrap_servers": bootstrap}, topics.all(), 3)
    return topics


def stalling_worker(
    bootstrap: str, topics: Topics, tmp_path: Path, *extra: str, name: str = "w1"
) -> Worker:
    return start_worker(
        bootstrap, topics, f"capflow-stall-{uuid.uuid4().hex[:8]}", tmp_path, name=name,
        opend_port=1, extra=["--no-poller", "--stall-timeout", str(TIMEOUT), *extra],
        module=MODULE,
    )  # fmt: skip


async def exit_code(worker: Worker, timeout: float) -> int:
    await wait_for(lambda: worker.proc.poll() is not None, timeout, "the worker to exit")
    code = worker.proc.returncode
    assert code is not None
    return code


async def flows(bootstrap: str, topics: Topics, count: int) -> None:
    """Wait until the worker has turned ``count`` snapshots into flows."""
    got = await read_topic(bootstrap, topics.flow, until=lambda r: len(r) >= count, timeout=120)
    assert len(got) == count


async def test_slow_and_idle_partitions_are_left_alone_a_hung_one_stops_the_worker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = await stalling_topics(kafka_bootstrap, topic_prefix)
    worker = stalling_worker(kafka_bootstrap, topics, tmp_path, "--shutdown-timeout", "5")
    with workers_stopped(worker):
        # Slow: a batch of 12 records of 0.4 s each keeps the partition lagging for about
        # 5 s, more than twice the timeout, while one record after the other is processed.
        await produce(kafka_bootstrap, topics.distribution, records(SLOW, range(12)))
        await flows(kafka_bootstrap, topics, 12)
        # Idle: no lag at all, for several timeouts (time passing is what is tested).
        await asyncio.sleep(4 * TIMEOUT)
        assert worker.proc.poll() is None, worker.tail()
        assert "stalled" not in worker.log_text(), worker.tail()

        # Hung: the same watchdog, still running, stops the worker.
        hung = records(HANG, range(1)) + records(SEC, range(1))
        await produce(kafka_bootstrap, topics.distribution, hung)
        assert await exit_code(worker, 90) == 1, worker.tail(60)
    log = worker.log_text()
    assert f"partition {topics.distribution}[0] stalled: a lag of 2 records" in log, worker.tail()
    assert "stopping (exit status 1)" in log
    assert "the stall watchdog stopped" not in log


async def test_stall_action_log_counts_the_stall_and_keeps_the_worker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = await stalling_topics(kafka_bootstrap, topic_prefix)
    worker = stalling_worker(
        kafka_bootstrap, topics, tmp_path, "--stall-action", "log", "--shutdown-timeout", "3"
    )
    with workers_stopped(worker):
        await produce(kafka_bootstrap, topics.distribution, records(SEC, range(3)))
        await flows(kafka_bootstrap, topics, 3)
        hung = records(HANG, range(1)) + records(SEC, range(3, 4))
        await produce(kafka_bootstrap, topics.distribution, hung)
        await wait_for(lambda: "stalled" in worker.log_text(), 90, "the stall in the log")
        await wait_for(
            lambda: metric(worker.web_port, "capflow_partition_stalls_total", 'partition="0"') == 1,
            30,
            "the stall counted",
        )
        assert worker.proc.poll() is None, worker.tail()
    assert f"partition {topics.distribution}[0] stalled: a lag of 2 records" in worker.log_text()


async def test_a_wedged_event_loop_still_ends_the_worker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Processing blocks the whole event loop: nothing can stop in order, so the watchdog
    (in a thread of its own) notices and the exit timer ends the process. (A batch
    handler that awaits forever holds Faust's stop up the same way: Faust waits for the
    records in flight to be acknowledged.)"""
    topics = await stalling_topics(kafka_bootstrap, topic_prefix)
    worker = stalling_worker(kafka_bootstrap, topics, tmp_path, "--shutdown-timeout", "3")
    try:
        await produce(kafka_bootstrap, topics.distribution, records(WEDGE, range(1)))
        assert await exit_code(worker, 90) == 1, worker.tail(60)
    finally:
        worker.kill()  # SIGKILL: a wedged loop does not run the SIGTERM handler
    log = worker.log_text()
    assert f"partition {topics.distribution}[0] stalled" in log, worker.tail()
    assert "the stop after a stall did not finish within 3s" in log, worker.tail()
