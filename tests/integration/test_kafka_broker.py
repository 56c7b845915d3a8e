"""The real broker answers: create a topic, produce with acks=all, consume it back."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.broker.local import LocalKafka, free_port_pair, new_cluster_id

pytestmark = pytest.mark.integration


async def test_create_produce_consume(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}.roundtrip"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        assert topic in await admin.list_topics()
        described = await admin.describe_topics([topic])
        assert len(described[0]["partitions"]) == 3
    finally:
        await admin.close()

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"v{i}".encode(), key=b"HK.00700")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        got: list[bytes] = []
        while len(got) < 10:
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, "no records within 5 s"
            for records in batch.values():
                got.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    # One key -> one partition -> produce order is kept.
    assert got == [f"v{i}".encode() for i in range(10)]


def test_new_cluster_id_is_never_read_as_a_flag() -> None:
    ids = [new_cluster_id() for _ in range(2000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    # urlsafe base64 of 16 random bytes: '_' and digits do appear in first position.
    assert len({i[0] for i in ids}) > 32


@pytest.mark.parametrize("cluster_id", ["-Q7hAlyRSnWk4a0rT2Zx3g", "_Q7hAlyRSnWk4a0rT2Zx3g"])
def test_storage_formats_with_ids_starting_with_dash_or_underscore(
    tmp_path: Path, cluster_id: str
) -> None:
    broker = LocalKafka(tmp_path / "kafka", port=free_port_pair())
    broker._write_config()
    broker._format_storage(cluster_id)
    meta = (tmp_path / "kafka" / "data" / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}" in meta
