"""Retry one alert on one sink until it is delivered or given up, never silently dropped.

Transient failures are retried with capped exponential backoff (or the delay the
server asked for). The give-up clock starts when the alert was written to the
alerts topic (the record timestamp), so a restarted follower does not start it
again; a sink is still retried for at least ``retry_floor`` seconds of its current
failure streak, so a follower that was down for longer than ``give_up_after`` does
not give up a whole backlog on the first hiccup. An alert given up, or rejected for
good, is written to the undelivered topic by ``UndeliveredTopic``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from streams.kafka.sending import KAFKA_BACKOFF, send_acknowledged
from streams.processing.events import rfc3339
from streams.sinks.http import DeliveryError, Sink
from streams.timing.backoff import Backoff

log = logging.getLogger(__name__)

DEFAULT_GIVE_UP_AFTER = 3600.0
DEFAULT_BASE_BACKOFF = 0.5
DEFAULT_MAX_BACKOFF = 60.0
DEFAULT_RETRY_FLOOR = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry one alert on one sink."""

    give_up_after: float = DEFAULT_GIVE_UP_AFTER
    base_backoff: float = DEFAULT_BASE_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF
    retry_floor: float = DEFAULT_RETRY_FLOOR

    def __post_init__(self) -> None:
        for name in ("give_up_after", "base_backoff", "max_backoff"):
            value = getattr(self, name)
            if not value > 0 or value == float("inf"):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if self.retry_floor < 0:
            raise ValueError(f"retry_floor must be >= 0, got {self.retry_floor}")

    def backoff(self, attempt: int, jitter: float) -> float:
        """Delay after failed ``attempt`` (1-based): capflow's retry schedule (doubling from
        ``base_backoff``, capped at ``max_backoff``) plus up to 50 % by ``jitter`` in [0, 1]."""
        cap = self.max_backoff
        return Backoff(min(self.base_backoff, cap), cap, jitter=0.5).delay(attempt, jitter)

    def deadline(
        self, published_at: float | None, first_attempt: float, failing_since: float | None = None
    ) -> float:
        """Wall-clock time after which a still failing alert is given up.

        The floor of retries counts from when the sink started failing, if it already
        was: behind an alert given up on a dead sink, older alerts do not each wait out
        a floor of their own.
        """
        start = first_attempt if published_at is None else min(published_at, first_attempt)
        floor_start = first_attempt if failing_since is None else min(failing_since, first_attempt)
        floor = floor_start + min(self.give_up_after, self.retry_floor)
        return max(start + self.give_up_after, floor)


@dataclass
class SinkHealth:
    """Since when one sink has been failing without a success in between (None: healthy)."""

    failing_since: float | None = None


@dataclass(frozen=True)
class Outcome:
    """How delivery of one alert to one sink ended."""

    delivered: bool
    attempts: int
    first_attempt: float
    last_attempt: float
    error: str = ""
    status: int | None = None
    permanent: bool = False

    @property
    def reason(self) -> str:
        """Why it was not delivered, for logs and the undelivered topic's headers."""
        if self.delivered:
            return ""
        if self.permanent:
            return f"rejected: {self.error}"
        span = self.last_attempt - self.first_attempt
        return f"gave up after {self.attempts} attempts over {span:.0f}s: {self.error}"


async def deliver(
    sink: Sink,
    event: dict[str, Any],
    *,
    published_at: float | None,
    policy: RetryPolicy,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    rng: Callable[[], float] = random.random,
    health: SinkHealth | None = None,
) -> Outcome:
    """Attempt ``event`` on ``sink`` until delivered, rejected, or past the deadline.

    ``health``, shared by all deliveries to one sink, remembers a failure streak.
    """
    health = SinkHealth() if health is None else health
    first = clock()
    deadline = policy.deadline(published_at, first, health.failing_since)
    event_id = event.get("id", "?")
    attempt = 0
    while True:
        attempt += 1
        started = clock()
        try:
            await sink.deliver_once(event)
        except DeliveryError as exc:
            now = clock()
            if not exc.retryable:
                log.error("%s %s rejected alert %s: %s", sink.kind, sink.target, event_id, exc)
                return Outcome(False, attempt, first, started, str(exc), exc.status, True)
            if health.failing_since is None:
                health.failing_since = started
            if now >= deadline:
                return Outcome(False, attempt, first, started, str(exc), exc.status, False)
            delay = policy.backoff(attempt, rng()) if exc.retry_after is None else exc.retry_after
            delay = min(delay, deadline - now)
            _log_retry(sink, event_id, attempt, exc, delay)
            await sleep(delay)
            continue
        except Exception as exc:  # a bug or an alert the sink cannot render: never a retry loop
            log.exception("%s %s failed on alert %s", sink.kind, sink.target, event_id)
            error = f"{type(exc).__name__}: {exc}"
            return Outcome(False, attempt, first, started, error, None, True)
        health.failing_since = None
        return Outcome(True, attempt, first, started)


def _log_retry(sink: Sink, event_id: Any, attempt: int, exc: Exception, delay: float) -> None:
    log.warning(
        "%s %s: alert %s attempt %d failed (%s); retrying in %.1fs",
        sink.kind,
        sink.target,
        event_id,
        attempt,
        exc,
        delay,
    )


# Headers of a record on the undelivered topic (the dead-letter names where they match).
HEADER_ERROR = "capflow-error"
HEADER_STAGE = "capflow-error-stage"
HEADER_SINK = "capflow-sink"
HEADER_TARGET = "capflow-sink-target"
HEADER_ATTEMPTS = "capflow-attempts"
HEADER_STATUS = "capflow-http-status"
HEADER_FIRST = "capflow-first-attempt"
HEADER_LAST = "capflow-last-attempt"
HEADER_ALERT_ID = "capflow-alert-id"
HEADER_TOPIC = "capflow-source-topic"
HEADER_PARTITION = "capflow-source-partition"
HEADER_OFFSET = "capflow-source-offset"


@dataclass(frozen=True)
class Undelivered:
    """One alert (or undecodable record) that a sink could not take, with why."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    stage: str  # "deliver" or "decode"
    error: str
    sink: str = ""
    target: str = ""
    alert_id: str = ""
    outcome: Outcome | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        out = [
            (HEADER_ERROR, self.error.encode()[:4096]),
            (HEADER_STAGE, self.stage.encode()),
            (HEADER_SINK, self.sink.encode()),
            (HEADER_TARGET, self.target.encode()),
            (HEADER_TOPIC, self.topic.encode()),
            (HEADER_PARTITION, str(self.partition).encode()),
            (HEADER_OFFSET, str(self.offset).encode()),
        ]
        if self.alert_id:
            out.append((HEADER_ALERT_ID, self.alert_id.encode()))
        if self.outcome is not None:
            status = "" if self.outcome.status is None else str(self.outcome.status)
            out += [
                (HEADER_ATTEMPTS, str(self.outcome.attempts).encode()),
                (HEADER_STATUS, status.encode()),
                (HEADER_FIRST, rfc3339(round(self.outcome.first_attempt, 3)).encode()),
                (HEADER_LAST, rfc3339(round(self.outcome.last_attempt, 3)).encode()),
            ]
        return out


class UndeliveredTopic:
    """Writes ``Undelivered`` records; retries until the broker has them (acks=all)."""

    def __init__(
        self,
        producer: Any,
        topic: str,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        backoff: Backoff = KAFKA_BACKOFF,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self._sleep = sleep
        self._backoff = backoff
        self.written = 0

    async def publish(
        self, record: Undelivered, sleep: Callable[[float], Awaitable[Any]] | None = None
    ) -> None:
        """Return only once the record is on the topic: the caller commits after this.

        ``sleep`` (default: the writer's) waits between attempts; a stoppable one ends
        the retries by raising.
        """
        await send_acknowledged(
            self.producer,
            self.topic,
            record.value,
            key=record.key,
            headers=record.headers(),
            backoff=self._backoff,
            sleep=self._sleep if sleep is None else sleep,
        )
        self.written += 1
