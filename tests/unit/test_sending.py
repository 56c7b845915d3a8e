"""Sending until acknowledged: retries on the backoff, a stopped producer replaced."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber, RequestTimedOutError

from streams.kafka.sending import AckedPublisher, send_acknowledged
from streams.timing.backoff import Backoff

NO_JITTER = Backoff(initial=0.5, cap=4.0, jitter=0.0)


class FakeProducer:
    """Answers each send with the next scripted error, then acknowledges."""

    def __init__(self, errors: list[Exception] | None = None, *, stopped: bool = False) -> None:
        self.errors = list(errors or [])
        self.stopped_for_good = stopped  # every send fails, as after aiokafka's sender died
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.started = self.closed = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.closed = True

    async def send_and_wait(
        self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Any = None
    ) -> None:
        assert self.started and not self.closed
        if self.stopped_for_good:
            raise OutOfOrderSequenceNumber()
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((topic, key, value))


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_transient_errors_are_retried_on_the_backoff() -> None:
    producer, sleeps = FakeProducer([RequestTimedOutError(), KafkaConnectionError()]), Sleeps()
    await producer.start()
    failed = await send_acknowledged(producer, "t", b"v", key=b"k", backoff=NO_JITTER, sleep=sleeps)
    assert failed == 2 and sleeps.waits == [0.5, 1.0]
    assert producer.sent == [("t", b"k", b"v")]


async def test_a_producer_stopped_for_good_is_replaced_and_the_record_sent_on_the_new_one() -> None:
    made: list[FakeProducer] = []
    scripts = [FakeProducer(stopped=True), FakeProducer([KafkaConnectionError()])]

    def make() -> FakeProducer:
        made.append(scripts[len(made)])
        return made[-1]

    sleeps = Sleeps()
    publisher = AckedPublisher("t", {}, backoff=NO_JITTER, sleep=sleeps, make_producer=make)
    await publisher.start()
    await publisher.publish("HK.00700", b"snapshot")
    first, second = made
    assert first.closed and first.sent == []
    assert second.sent == [("t", b"HK.00700", b"snapshot")] and not second.closed
    assert publisher.replaced == 1 and publisher.retries == 2 and publisher.published == 1
    assert sleeps.waits == [0.5, 1.0]
    await publisher.publish("HK.00700", b"next")  # the new producer stays
    assert len(made) == 2 and second.sent[-1] == ("t", b"HK.00700", b"next")
    await publisher.stop()
    assert second.closed


async def test_a_replacement_that_cannot_start_is_one_more_failed_attempt() -> None:
    class Unstartable(FakeProducer):
        async def start(self) -> None:
            raise KafkaConnectionError("broker down")

    made: list[FakeProducer] = []
    scripts: list[FakeProducer] = [FakeProducer(stopped=True), Unstartable(), FakeProducer()]

    def make() -> FakeProducer:
        made.append(scripts[len(made)])
        return made[-1]

    publisher = AckedPublisher("t", {}, backoff=NO_JITTER, sleep=Sleeps(), make_producer=make)
    await publisher.start()
    await publisher.publish("k", b"v")
    assert made[1].closed  # the one that failed to start is closed, not leaked
    assert made[2].sent == [("t", b"k", b"v")] and publisher.retries == 2


async def test_publish_before_start_is_a_programming_error() -> None:
    publisher = AckedPublisher("t", {}, make_producer=FakeProducer)
    with pytest.raises(RuntimeError, match="start"):
        await publisher.publish("k", b"v")
