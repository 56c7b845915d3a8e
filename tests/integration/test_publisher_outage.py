"""A publisher that outlives a broker outage longer than its request timeout.

The broker's controlled shutdown leaves the partitions without a leader; a batch that
waits longer than the request timeout for one fails and spends its sequence number, the
broker answers the next batch OutOfOrderSequenceNumber and aiokafka's sender stops for
good. Before the publisher replaced such a producer, every later send failed the same
way and the poller never published again (this test timed out waiting for records
after the outage).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from streams.broker.local import LocalKafka, free_port_pair
from streams.kafka.reading import read_to_end
from streams.kafka.sending import AckedPublisher
from streams.kafka.topics import ensure_topics
from streams.timing.backoff import Backoff
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration

REQUEST_TIMEOUT_MS = 2000  # the publisher's, scaled down from 15 s
OUTAGE_S = 3 * REQUEST_TIMEOUT_MS / 1000  # several timeouts: batches expire meanwhile


async def test_an_outage_longer_than_the_request_timeout_loses_nothing(tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path / "kafka", port=free_port_pair())
    broker.start(progress=False)
    kafka = {"bootstrap_servers": broker.bootstrap}
    topic = f"t{uuid.uuid4().hex[:10]}.distribution"
    publisher = AckedPublisher(
        topic, kafka, request_timeout_ms=REQUEST_TIMEOUT_MS, backoff=Backoff(0.2, 1.0, 0.0)
    )
    sent: list[bytes] = []

    async def poll() -> None:  # one record after another, each awaited, as the poller does
        for n in range(10**6):
            await publisher.publish(f"HK.{n % 7:05d}", str(n).encode())
            sent.append(str(n).encode())

    try:
        await ensure_topics(kafka, [topic], 3)
        await publisher.start()
        polling = asyncio.create_task(poll())
        await wait_for(lambda: len(sent) >= 20, 30, "records before the outage")
        await asyncio.to_thread(broker.stop)
        before = len(sent)
        await asyncio.sleep(OUTAGE_S)  # the outage itself, several request timeouts long
        assert len(sent) <= before + 1, "records acknowledged by a stopped broker"
        await asyncio.to_thread(broker.start, progress=False)
        await wait_for(lambda: len(sent) >= before + 20, 60, "records after the outage")
        polling.cancel()
        stored = {r.value for r in await read_to_end(kafka, topic)}
    finally:
        await publisher.stop()
        broker.stop()
    in_flight = str(len(sent)).encode()  # cancelled while being sent: stored or not
    # At least once: a record sent again on a new producer may be stored twice.
    assert set(sent) <= stored <= set(sent) | {in_flight}
