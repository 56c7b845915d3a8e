"""SendTracker: counts what the broker confirmed and leaves no failure unread."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from streams.commands.replay import ReplayFailed, SendTracker


async def test_counts_confirmed_and_raises_the_first_failure_in_order() -> None:
    loop = asyncio.get_running_loop()
    tracker = SendTracker()
    futures: list[asyncio.Future[Any]] = [loop.create_future() for _ in range(5)]
    for fut in futures:
        tracker.add(fut)
    futures[0].set_result("ok")
    futures[1].set_result("ok")
    futures[2].set_exception(KafkaTimeoutError())
    futures[4].set_result("ok")  # completes after the failure: still counted as written
    with pytest.raises(KafkaTimeoutError):
        await tracker.drain()
    futures[3].cancel()
    await asyncio.sleep(0)
    assert (tracker.confirmed, tracker.failed) == (3, 2)
    assert tracker.unfinished() == []


async def test_failures_nobody_awaited_are_not_reported_as_unretrieved() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        tracker = SendTracker()
        for _ in range(100):
            fut: asyncio.Future[Any] = loop.create_future()
            tracker.add(fut)
            fut.set_exception(KafkaTimeoutError())
        await asyncio.sleep(0)
        del tracker, fut
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert reported == []


def test_failure_message_names_the_count_and_the_cause_once() -> None:
    assert str(ReplayFailed(209, 3000, KafkaTimeoutError())) == (
        "Kafka failed after 209 of 3000 snapshots were confirmed written (KafkaTimeoutError)"
    )
    assert str(ReplayFailed(0, 5, ConnectionError("broker gone"))).endswith(
        "(ConnectionError: broker gone)"
    )
