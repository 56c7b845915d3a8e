"""Dead-letter records: the original key and bytes, with why and where they failed."""

from __future__ import annotations

from dataclasses import dataclass

HEADER_ERROR = "capflow-error"
HEADER_STAGE = "capflow-error-stage"
HEADER_TOPIC = "capflow-source-topic"
HEADER_PARTITION = "capflow-source-partition"
HEADER_OFFSET = "capflow-source-offset"


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

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (HEADER_ERROR, self.error.encode()[:4096]),
            (HEADER_STAGE, self.stage.encode()),
            (HEADER_TOPIC, self.topic.encode()),
            (HEADER_PARTITION, str(self.partition).encode()),
            (HEADER_OFFSET, str(self.offset).encode()),
        ]
