"""Retrying one alert on one sink: backoff, the give-up clock, outcomes, undelivered records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.sinks.delivery import (
    HEADER_ALERT_ID,
    HEADER_ATTEMPTS,
    HEADER_ERROR,
    HEADER_OFFSET,
    HEADER_SINK,
    HEADER_STAGE,
    HEADER_STATUS,
    Outcome,
    RetryPolicy,
    SinkHealth,
    Undelivered,
    UndeliveredTopic,
    deliver,
)
from streams.sinks.http import DeliveryError
from tests.fakes import FakeClock

EVENT = {"id": "0123456789abcdef0123456789abcdef", "data": {"security": "HK.00700"}}


@dataclass
class ScriptedSink:
    """Fails with the scripted errors in order, then accepts; counts attempts."""

    errors: list[DeliveryError] = field(default_factory=list)
    forever: DeliveryError | None = None
    attempts: int = 0
    kind: str = "webhook"
    target: str = "http://127.0.0.1:1"

    async def deliver_once(self, event: dict[str, Any]) -> None:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        if self.forever is not None:
            raise self.forever

    async def close(self) -> None:
        return None


def transient(retry_after: float | None = None) -> DeliveryError:
    return DeliveryError("HTTP 503", retryable=True, status=503, retry_after=retry_after)


async def run(sink: ScriptedSink, clock: FakeClock, policy: RetryPolicy, **kw: Any) -> Outcome:
    kw.setdefault("published_at", clock.now)
    return await deliver(
        sink, EVENT, policy=policy, clock=clock, sleep=clock.sleep, rng=lambda: 0.0, **kw
    )


async def test_retries_with_doubling_backoff_until_delivered() -> None:
    clock, sink = FakeClock(), ScriptedSink(errors=[transient() for _ in range(4)])
    outcome = await run(sink, clock, RetryPolicy(base_backoff=0.5, max_backoff=3.0))
    assert outcome.delivered and outcome.attempts == 5 and sink.attempts == 5
    assert clock.sleeps == [0.5, 1.0, 2.0, 3.0]  # capped at max_backoff
    assert outcome.reason == ""


async def test_permanent_error_stops_at_once() -> None:
    clock = FakeClock()
    sink = ScriptedSink(errors=[DeliveryError("HTTP 400: bad", retryable=False, status=400)])
    outcome = await run(sink, clock, RetryPolicy())
    assert not outcome.delivered and outcome.permanent
    assert (outcome.attempts, outcome.status, clock.sleeps) == (1, 400, [])
    assert outcome.reason == "rejected: HTTP 400: bad"


async def test_gives_up_at_the_deadline_after_a_last_attempt() -> None:
    clock, sink = FakeClock(), ScriptedSink(forever=transient())
    policy = RetryPolicy(give_up_after=10.0, base_backoff=1.0, max_backoff=4.0, retry_floor=0.0)
    outcome = await run(sink, clock, policy)
    assert not outcome.delivered and not outcome.permanent
    # 1 + 2 + 4 + 3 (cut to the deadline): the last attempt happens exactly at it.
    assert clock.sleeps == [1.0, 2.0, 4.0, 3.0]
    assert outcome.attempts == 5 and outcome.last_attempt - outcome.first_attempt == 10.0
    assert outcome.reason == "gave up after 5 attempts over 10s: HTTP 503"


async def test_give_up_clock_starts_at_publication() -> None:
    clock, sink = FakeClock(), ScriptedSink(forever=transient())
    policy = RetryPolicy(give_up_after=100.0, base_backoff=1.0, max_backoff=1.0, retry_floor=5.0)
    # Published 98 s ago (a restarted follower): only the floor of 5 s of retries is left.
    outcome = await run(sink, clock, policy, published_at=clock.now - 98.0)
    assert not outcome.delivered
    assert outcome.last_attempt - outcome.first_attempt == 5.0


async def test_a_sink_failing_for_long_does_not_give_every_old_alert_a_floor() -> None:
    clock, sink = FakeClock(), ScriptedSink(forever=transient())
    policy = RetryPolicy(give_up_after=100.0, base_backoff=1.0, max_backoff=1.0, retry_floor=5.0)
    health = SinkHealth()
    old = clock.now - 500.0  # both alerts are older than give_up_after
    first = await run(sink, clock, policy, published_at=old, health=health)
    assert first.last_attempt - first.first_attempt == 5.0  # the first gets its floor
    assert health.failing_since == first.first_attempt
    second = await run(sink, clock, policy, published_at=old, health=health)
    assert second.attempts == 1  # the sink has been down longer than the floor already

    sink.forever = None  # the sink recovers: the streak ends
    assert (await run(sink, clock, policy, health=health)).delivered
    assert health.failing_since is None


async def test_server_retry_after_is_honoured_but_not_past_the_deadline() -> None:
    clock = FakeClock()
    sink = ScriptedSink(errors=[transient(retry_after=7.0), transient(retry_after=50.0)])
    policy = RetryPolicy(give_up_after=20.0, retry_floor=0.0)
    outcome = await run(sink, clock, policy)
    assert outcome.delivered and clock.sleeps == [7.0, 13.0]


async def test_an_unexpected_error_is_final_not_a_crash() -> None:
    class Broken(ScriptedSink):
        async def deliver_once(self, event: dict[str, Any]) -> None:
            self.attempts += 1
            raise OverflowError("timestamp out of range")

    clock, sink = FakeClock(), Broken()
    outcome = await run(sink, clock, RetryPolicy())
    assert not outcome.delivered and outcome.permanent and sink.attempts == 1
    assert outcome.reason == "rejected: OverflowError: timestamp out of range"


def test_policy_rejects_nonsense() -> None:
    for kwargs in ({"give_up_after": 0.0}, {"base_backoff": -1.0}, {"max_backoff": float("inf")}):
        with pytest.raises(ValueError, match="must be a finite number > 0"):
            RetryPolicy(**kwargs)
    with pytest.raises(ValueError, match="retry_floor"):
        RetryPolicy(retry_floor=-1.0)


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    jitter=st.floats(min_value=-1.0, max_value=2.0),
    base=st.floats(min_value=0.01, max_value=10.0),
    cap=st.floats(min_value=0.01, max_value=600.0),
)
def test_backoff_is_bounded_and_grows(attempt: int, jitter: float, base: float, cap: float) -> None:
    policy = RetryPolicy(base_backoff=base, max_backoff=cap)
    delay = policy.backoff(attempt, jitter)
    assert 0 < delay <= cap
    assert policy.backoff(attempt + 1, 0.0) >= policy.backoff(attempt, 0.0)


@given(
    give_up=st.floats(min_value=0.1, max_value=1e6),
    floor=st.floats(min_value=0.0, max_value=1e4),
    age=st.floats(min_value=-100.0, max_value=1e7),
)
def test_deadline_never_cuts_the_floor_nor_the_give_up_time(
    give_up: float, floor: float, age: float
) -> None:
    policy = RetryPolicy(give_up_after=give_up, retry_floor=floor)
    first = 2_000_000_000.0
    deadline = policy.deadline(first - age, first)
    assert deadline >= first + min(give_up, floor)  # every run gets its floor of retries
    assert deadline >= min(first - age, first) + give_up  # never before give_up_after
    assert deadline <= first + give_up  # and never later than a fresh alert's


@given(
    give_up=st.floats(min_value=0.1, max_value=1e6),
    floor=st.floats(min_value=0.0, max_value=1e4),
    age=st.floats(min_value=0.0, max_value=1e7),
    failing_for=st.floats(min_value=0.0, max_value=1e7),
)
def test_a_failure_streak_only_shortens_the_floor(
    give_up: float, floor: float, age: float, failing_for: float
) -> None:
    policy = RetryPolicy(give_up_after=give_up, retry_floor=floor)
    first = 2_000_000_000.0
    fresh = policy.deadline(first - age, first)
    streak = policy.deadline(first - age, first, first - failing_for)
    assert first - age + give_up <= streak <= fresh  # never before give_up_after
    if failing_for >= min(give_up, floor) and age >= give_up:
        assert streak <= first  # an old alert on a long-dead sink: one attempt, then give up


def test_undelivered_headers_say_why_where_and_how_often() -> None:
    outcome = Outcome(False, 3, 1795570800.0, 1795570860.5, "HTTP 503", 503)
    record = Undelivered(
        key=b"HK.00700",
        value=b"{}",
        topic="capflow.alerts.v1",
        partition=2,
        offset=41,
        stage="deliver",
        error=outcome.reason,
        sink="webhook",
        target="https://example.com",
        alert_id=EVENT["id"],
        outcome=outcome,
    )
    headers = dict(record.headers())
    assert headers[HEADER_ERROR] == b"gave up after 3 attempts over 60s: HTTP 503"
    assert headers[HEADER_STAGE] == b"deliver"
    assert headers[HEADER_SINK] == b"webhook"
    assert headers[HEADER_ATTEMPTS] == b"3"
    assert headers[HEADER_STATUS] == b"503"
    assert headers[HEADER_OFFSET] == b"41"
    assert headers[HEADER_ALERT_ID] == EVENT["id"].encode()
    assert headers["capflow-last-attempt"] == b"2026-11-25T01:41:00.5Z"


async def test_undelivered_topic_retries_until_the_broker_takes_it() -> None:
    from aiokafka.errors import KafkaConnectionError

    class FlakyProducer:
        def __init__(self) -> None:
            self.calls = 0
            self.sent: list[tuple[str, bytes | None, bytes | None]] = []

        async def send_and_wait(self, topic: str, value: Any, key: Any, headers: Any) -> None:
            self.calls += 1
            if self.calls <= 2:
                raise KafkaConnectionError("broker down")
            self.sent.append((topic, key, value))

    clock = FakeClock()
    producer = FlakyProducer()
    topic = UndeliveredTopic(producer, "undelivered", sleep=clock.sleep)
    record = Undelivered(b"k", b"v", "alerts", 0, 5, "decode", "not JSON")
    await topic.publish(record)
    assert producer.sent == [("undelivered", b"k", b"v")]
    # capflow's retry schedule: 0.5 s, then 1 s, each lengthened by up to a fifth
    assert len(clock.sleeps) == 2 and topic.written == 1
    assert 0.5 <= clock.sleeps[0] <= 0.6 and 1.0 <= clock.sleeps[1] <= 1.2


def test_asyncapi_describes_the_undelivered_topic_and_every_header() -> None:
    from pathlib import Path

    import yaml

    from streams.settings import SinkSettings

    doc = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "schemas" / "asyncapi.yaml").read_text()
    )
    assert SinkSettings().topic_undelivered in doc["channels"]
    message = doc["components"]["messages"]["UndeliveredAlert"]
    outcome = Outcome(False, 2, 1.0, 2.0, "HTTP 503", 503)
    full = Undelivered(b"k", b"v", "t", 0, 1, "deliver", "x", "webhook", "h", "id", outcome)
    written = {name for name, _ in full.headers()}
    assert written == set(message["headers"]["properties"])
    assert set(message["headers"]["required"]) <= {name for name, _ in full.headers()}
    assert set(message["examples"][0]["headers"]) == written
