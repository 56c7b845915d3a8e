"""``capflow`` whose worker processing hangs or crawls on marked records (stall watchdog tests).

Run as ``python -m tests.integration.stalling_worker worker ...`` (``start_worker``'s
``module``). Records are marked by their security (the key): a batch with a record of
``HANG`` makes the batch handler wait forever, one of ``WEDGE`` blocks the whole event
loop instead, and each record of ``SLOW`` takes ``SLOW_S`` seconds to decode (the event
loop blocked meanwhile), so a batch of them is slow from one record to the next.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

from streams.cli import main
from streams.pipeline.app import Pipeline
from streams.pipeline.processor import SecurityProcessor
from streams.processing.flow import Snapshot

SLOW, HANG, WEDGE = "HK.00001", "HK.00002", "HK.00003"
SLOW_S = 0.4
_handle_batch = Pipeline.handle_batch
_decode = SecurityProcessor.decode


async def handle_batch(self: Pipeline, events: Sequence[Any]) -> None:
    keys = {event.message.key for event in events}
    if HANG.encode() in keys:
        await asyncio.Event().wait()
    if WEDGE.encode() in keys:
        time.sleep(3600)
    await _handle_batch(self, events)


def decode(self: SecurityProcessor, key: bytes | None, value: bytes | None) -> Snapshot:
    if key == SLOW.encode():
        time.sleep(SLOW_S)
    return _decode(self, key, value)


if __name__ == "__main__":  # only in the worker's process: importing changes nothing
    Pipeline.handle_batch = handle_batch  # type: ignore[method-assign]
    SecurityProcessor.decode = decode  # type: ignore[method-assign]
    sys.exit(main())
