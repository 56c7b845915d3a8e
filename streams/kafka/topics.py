"""Create capflow's topics up front with matching partition counts.

Faust tables are co-partitioned with their source topic: the snapshot topic and the
state changelog must have the same number of partitions. A topic auto-created by a
producer would get the broker default (often 1), so every entry point that writes
calls ``ensure_topics`` first and a mismatch is reported instead of crashing Faust.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from streams.timing.backoff import Backoff

log = logging.getLogger(__name__)
# A broker that is still starting: 1, 2, 4 s, then every 5 s until ``attempts`` run out.
ADMIN_BACKOFF = Backoff(initial=1.0, cap=5.0, jitter=0.0)


class TopicMismatchError(RuntimeError):
    """An existing topic has another partition count than the pipeline needs."""


async def ensure_topics(
    client_kwargs: dict[str, Any],
    topics: list[str],
    partitions: int,
    *,
    attempts: int = 30,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create missing topics with ``partitions`` (and ``configs[topic]``, if any); verify
    existing ones match."""
    admin = AIOKafkaAdminClient(**client_kwargs)
    retry = ADMIN_BACKOFF.waits()
    for attempt in range(1, attempts + 1):
        try:
            await admin.start()
            break
        except KafkaConnectionError as exc:
            if attempt == attempts:
                raise ConnectionError(
                    f"Kafka at {client_kwargs.get('bootstrap_servers')} does not answer: {exc}. "
                    "Start one with `capflow kafka start` or set CAPFLOW_KAFKA_BOOTSTRAP."
                ) from exc
            await asyncio.sleep(retry.next_wait())
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            t,
                            num_partitions=partitions,
                            replication_factor=1,
                            topic_configs=dict((configs or {}).get(t, {})),
                        )
                        for t in missing
                    ]
                )
                log.info("created topics %s with %d partitions", missing, partitions)
            except TopicAlreadyExistsError:
                pass  # another process created them at the same moment
        present = [t for t in topics if t in existing]
        if present:
            for desc in await admin.describe_topics(present):
                count = len(desc["partitions"])
                if count != partitions:
                    raise TopicMismatchError(
                        f"topic {desc['topic']} has {count} partitions, capflow is configured "
                        f"for {partitions}; set CAPFLOW_TOPIC_PARTITIONS={count} or use new topics"
                    )
    finally:
        await admin.close()
