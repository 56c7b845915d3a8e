"""Shared fixtures: one real Kafka broker per test session.

The broker is started through the same code as ``capflow kafka start`` unless
CAPFLOW_KAFKA_BOOTSTRAP names an existing one (docker compose, or the one broker
``scripts/test.sh`` starts for all its pytest-xdist processes).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker.local import LocalKafka, free_port_pair
from streams.settings import LocalKafkaSettings
from streams.settings.declare import from_environment


@pytest.fixture(scope="session")
def local_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka | None]:
    """The broker this session started, or None when CAPFLOW_KAFKA_BOOTSTRAP is given."""
    if os.environ.get("CAPFLOW_KAFKA_BOOTSTRAP"):
        yield None
        return
    jars = from_environment(LocalKafkaSettings).cache_dir  # CAPFLOW_CACHE_DIR, if set
    broker = LocalKafka(
        Path(tmp_path_factory.mktemp("kafka")), port=free_port_pair(), cache_dir=jars
    )
    broker.start(progress=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(local_kafka: LocalKafka | None) -> str:
    if local_kafka is None:
        return os.environ["CAPFLOW_KAFKA_BOOTSTRAP"]
    return local_kafka.bootstrap


@pytest.fixture
def topic_prefix() -> str:
    """A unique prefix so tests sharing the broker never see each other's records."""
    return f"t{uuid.uuid4().hex[:10]}"
