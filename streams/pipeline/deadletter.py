"""Dead-letter records: the original key and bytes, with why and where they failed.

The dead-letter topic is created with room for any record of the snapshot topic plus
the dead-letter headers (``ensure_deadletter_topic``), and the worker's producer is
sized to it, so a record that reached the snapshot topic is stored whole, and stays
there when the snapshot topic's retention has long passed. Only a copy the broker
cannot store at all (an operator gave the dead-letter topic a smaller limit, or
lowered it while the worker runs) is cut: it keeps as many leading bytes as fit, and
headers say that it was cut, how large the original was and its SHA-256, next to the
source topic, partition and offset where the whole record can be read meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from streams.kafka.topics import ensure_topics

log = logging.getLogger(__name__)

HEADER_ERROR = "capflow-error"
HEADER_STAGE = "capflow-error-stage"
HEADER_TOPIC = "capflow-source-topic"
HEADER_PARTITION = "capflow-source-partition"
HEADER_OFFSET = "capflow-source-offset"
# Only on a truncated copy:
HEADER_TRUNCATED = "capflow-truncated"  # which parts were cut: "value" or "key,value"
HEADER_ORIGINAL_SIZE = "capflow-original-size"  # bytes of the original value
HEADER_ORIGINAL_KEY_SIZE = "capflow-original-key-size"  # bytes of the original key
HEADER_ORIGINAL_SHA256 = "capflow-original-sha256"  # hex SHA-256 of the original value

KEY_KEEP = 1024  # bytes of a key kept when the key alone does not fit
# Above the source topic's limit: the dead-letter headers (the error text alone may take
# 4 KiB), and to spare.
HEADROOM = 64 * 1024
BROKER_DEFAULT_LIMIT = 1_048_588  # Kafka's message.max.bytes when nobody changed it
Headers = list[tuple[str, bytes]]


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """The size the producer checks against its request limit (aiokafka's own estimate)."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers)))


async def topic_message_limit(client_kwargs: dict[str, Any], topic: str) -> int | None:
    """The topic's effective ``max.message.bytes`` (None when the broker does not say)."""
    admin = AIOKafkaAdminClient(**client_kwargs)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": None})
        responses = await admin.describe_configs([resource])
    finally:
        await admin.close()
    for response in responses:
        for error_code, _msg, _type, name, entries, *_ in response.resources:
            if error_code or name != topic:
                continue
            for entry in entries:
                if entry[0] == "max.message.bytes" and str(entry[1]).isdigit():
                    return int(entry[1])
    return None


async def ensure_deadletter_topic(
    client_kwargs: dict[str, Any], source: str, deadletter: str, partitions: int
) -> int | None:
    """Create ``deadletter`` with room for any record of ``source``; its limit (None when
    the broker does not say). An existing topic keeps the limit it has: an operator may
    have chosen it, and a warning says what it will cut."""
    try:
        source_limit = await topic_message_limit(client_kwargs, source)
    except Exception as exc:  # no DescribeConfigs right: assume the broker's default
        log.warning("max.message.bytes of %s unknown: %r", source, exc)
        source_limit = None
    wanted = (source_limit or BROKER_DEFAULT_LIMIT) + HEADROOM
    config = {deadletter: {"max.message.bytes": str(wanted)}}
    await ensure_topics(client_kwargs, [deadletter], partitions, configs=config)
    try:
        limit = await topic_message_limit(client_kwargs, deadletter)
    except Exception as exc:
        log.warning("max.message.bytes of %s unknown: %r", deadletter, exc)
        return None
    if limit is not None and limit < wanted:
        log.warning(
            "dead-letter topic %s takes records up to %d bytes, %s up to %d: larger dead "
            "letters are stored cut (raise its max.message.bytes to %d to keep them whole)",
            deadletter,
            limit,
            source,
            wanted - HEADROOM,
            wanted,
        )
    return limit


@dataclass(frozen=True)
class DeadLetter:
    """One record that a stage could not process."""

    key: bytes | None
    value: bytes | None
    stage: str  # "decode" or "process"
    error: str
    topic: str
    partition: int
    offset: int

    def headers(self) -> Headers:
        return [
            (HEADER_ERROR, self.error.encode()[:4096]),
            (HEADER_STAGE, self.stage.encode()),
            (HEADER_TOPIC, self.topic.encode()),
            (HEADER_PARTITION, str(self.partition).encode()),
            (HEADER_OFFSET, str(self.offset).encode()),
        ]

    def fitted(self, max_bytes: int) -> tuple[bytes | None, bytes | None, Headers]:
        """Key, value and headers of a copy no larger than ``max_bytes``.

        The record itself when it fits; otherwise a prefix of the value (and of the
        key, if the key alone is too large) with headers that describe the original.
        """
        headers = self.headers()
        if record_size(self.key, self.value, headers) <= max_bytes:
            return self.key, self.value, headers
        value = self.value or b""
        key = self.key
        extra: Headers = [
            (HEADER_TRUNCATED, b"value"),
            (HEADER_ORIGINAL_SIZE, str(len(value)).encode()),
            (HEADER_ORIGINAL_SHA256, hashlib.sha256(value).hexdigest().encode()),
        ]
        if key is not None and record_size(key, b"", headers + extra) > max_bytes:
            extra[0] = (HEADER_TRUNCATED, b"key,value")
            extra.append((HEADER_ORIGINAL_KEY_SIZE, str(len(key)).encode()))
            key = key[:KEY_KEEP]
        headers = headers + extra
        room = max_bytes - record_size(key, b"", headers)
        # The estimate grows by the varint of the length too: step down until it fits.
        keep = max(0, min(len(value), room))
        while keep > 0 and record_size(key, value[:keep], headers) > max_bytes:
            keep -= max(1, record_size(key, value[:keep], headers) - max_bytes)
        return key, value[: max(keep, 0)], headers
