"""Stopping and committing around deliveries: what a stop finishes, what it ends, and how
handled offsets are committed (coalesced, forward only, never for a moved partition)."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.errors import CommitFailedError, KafkaConnectionError

from streams.sinks.commits import OffsetCommitter
from streams.sinks.delivery import RetryPolicy, Undelivered
from streams.sinks.dispatch import AlertDispatch
from streams.sinks.stop import Stopped, StopSignal
from tests.unit.test_delivery import EVENT, ScriptedSink, transient

TP = namedtuple("TP", "topic partition")
P0, P1 = TP("alerts", 0), TP("alerts", 1)
Record = namedtuple("Record", "key value topic partition offset timestamp")
RECORD = Record(b"HK.00700", b"{}", "alerts", 0, 7, 0)


# -- StopSignal ----------------------------------------------------------------------


async def test_a_stop_ends_a_sleep_at_once() -> None:
    stop = StopSignal()
    sleeping = asyncio.create_task(stop.sleep(3600))
    await asyncio.sleep(0)
    stop.set()
    with pytest.raises(Stopped):
        await asyncio.wait_for(sleeping, 5)
    with pytest.raises(Stopped):  # and every later wait
        await stop.sleep(0)


async def test_an_unstopped_sleep_returns() -> None:
    await asyncio.wait_for(StopSignal().sleep(0.01), 5)


# -- AlertDispatch -------------------------------------------------------------------


@dataclass
class HeldSink(ScriptedSink):
    """Each attempt waits for ``release`` (an HTTP answer on its way), then scripts."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: asyncio.Event = field(default_factory=asyncio.Event)

    async def deliver_once(self, event: dict[str, Any]) -> None:
        self.waiting.set()
        await self.release.wait()
        await super().deliver_once(event)


class Undeliverable:
    """The undelivered topic, kept in a list."""

    topic = "alerts.undelivered"

    def __init__(self) -> None:
        self.records: list[Undelivered] = []

    async def publish(self, record: Undelivered, sleep: Any = None) -> None:
        self.records.append(record)


def dispatch(*sinks: ScriptedSink) -> tuple[AlertDispatch, Undeliverable]:
    out = Undeliverable()
    policy = RetryPolicy(give_up_after=3600)
    return AlertDispatch(list(sinks), policy, out, warn=lambda _: None), out  # type: ignore[arg-type]


async def test_a_stop_lets_the_attempt_under_way_finish_and_deliver() -> None:
    sink = HeldSink()
    alerts, out = dispatch(sink)
    stop = StopSignal()
    handling = asyncio.create_task(alerts.on_record(EVENT, RECORD, stop))
    await asyncio.wait_for(sink.waiting.wait(), 5)
    stop.set()
    sink.release.set()
    await asyncio.wait_for(handling, 5)  # returned: the follower commits it
    assert sink.attempts == 1 and out.records == []


async def test_a_stop_during_a_retry_pause_raises_and_sets_nothing_aside() -> None:
    failing, fine = ScriptedSink(forever=transient()), HeldSink()
    alerts, out = dispatch(failing, fine)
    stop = StopSignal()
    handling = asyncio.create_task(alerts.on_record(EVENT, RECORD, stop))
    await asyncio.wait_for(fine.waiting.wait(), 5)  # the failing sink is in its pause now
    stop.set()
    fine.release.set()
    with pytest.raises(Stopped):  # not handled: it is not committed
        await asyncio.wait_for(handling, 5)
    assert (failing.attempts, fine.attempts) == (1, 1)
    assert out.records == [] and alerts.failures == 0


async def test_a_sink_that_rejects_sets_the_alert_aside_and_counts_it() -> None:
    alerts, out = dispatch(ScriptedSink(errors=[transient(), _rejected()]))
    await alerts.on_record(EVENT, RECORD, StopSignal())
    assert [r.stage for r in out.records] == ["deliver"] and alerts.failures == 1


def _rejected() -> Any:
    from streams.sinks.http import DeliveryError

    return DeliveryError("HTTP 400", retryable=False, status=400)


# -- OffsetCommitter -----------------------------------------------------------------


class Broker:
    """Offset commits: each waits for ``gate`` when it is closed; all are recorded."""

    def __init__(self, assigned: set[Any] | None = None) -> None:
        self.commits: list[dict[Any, int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()
        self.assigned = {P0, P1} if assigned is None else assigned
        self.errors: list[Exception] = []

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.started.set()
        await self.gate.wait()
        if self.errors:
            raise self.errors.pop(0)
        self.commits.append(dict(offsets))


async def committing(broker: Broker, tp: Any, offset: int) -> OffsetCommitter:
    """A committer whose first commit (``tp`` at ``offset``) is out, held at the gate."""
    committer = OffsetCommitter(broker.commit, lambda: broker.assigned)
    broker.gate.clear()
    committer.handled(tp, offset)
    await asyncio.wait_for(broker.started.wait(), 5)
    return committer


async def test_offsets_handled_during_a_commit_go_in_the_next_one() -> None:
    broker = Broker()
    committer = await committing(broker, P0, 1)
    for offset in range(2, 51):  # a backlog handled while the first commit is out
        committer.handled(P0, offset)
    for offset in range(1, 11):
        committer.handled(P1, offset)
    broker.gate.set()
    assert await committer.flush(5)
    assert broker.commits == [{P0: 1}, {P0: 50, P1: 10}]
    assert committer.requests == 2
    await committer.close()


async def test_offsets_only_move_forward() -> None:
    broker = Broker()
    committer = await committing(broker, P0, 5)
    committer.handled(P1, 9)
    committer.handled(P1, 3)  # older than what is pending: ignored
    broker.gate.set()
    assert await committer.flush(5)
    assert broker.commits == [{P0: 5}, {P1: 9}]
    await committer.close()


async def test_a_partition_that_moved_is_not_committed() -> None:
    broker = Broker(assigned={P0})
    committer = OffsetCommitter(broker.commit, lambda: broker.assigned)
    committer.handled(P1, 4)
    assert await committer.flush(5)
    assert broker.commits == []
    broker.errors = [CommitFailedError("rebalanced")]  # moved while the commit was out
    committer.handled(P0, 2)
    assert await committer.flush(5)
    assert broker.commits == []
    committer.handled(P0, 3)  # the committer goes on afterwards
    assert await committer.flush(5)
    assert broker.commits == [{P0: 3}]
    await committer.close()


async def test_a_failed_commit_is_retried_with_what_was_handled_meanwhile() -> None:
    broker = Broker()
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        committer.handled(P1, 8)  # handled during the pause
        await asyncio.sleep(0)

    committer = OffsetCommitter(broker.commit, lambda: broker.assigned, sleep=sleep)
    broker.errors = [KafkaConnectionError("broker away")]
    committer.handled(P0, 2)
    assert await committer.flush(5)
    assert broker.commits == [{P0: 2, P1: 8}] and sleeps == [0.5]
    await committer.close()


async def test_flush_says_when_the_commit_did_not_make_it_in_time() -> None:
    broker = Broker()
    broker.gate.clear()
    committer = OffsetCommitter(broker.commit, lambda: broker.assigned)
    committer.handled(P0, 1)
    assert not await committer.flush(0.05)
    committer.forget({P0})
    broker.gate.set()
    assert await committer.flush(5)
    await committer.close()


async def test_forget_drops_what_a_revoked_partition_had_pending() -> None:
    broker = Broker()
    committer = await committing(broker, P0, 1)
    committer.handled(P1, 6)
    committer.forget({P1})
    broker.gate.set()
    assert await committer.flush(5)
    assert broker.commits == [{P0: 1}]
    await committer.close()
