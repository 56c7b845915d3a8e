"""``capflow alerts`` at run time: the follower, the sinks and the undelivered topic wired.

Kafka access is checked first (one clear line for a refused login or a missing ACL);
with sinks, the alerts and undelivered topics are created if missing and an
idempotent producer writes what the sinks cannot take. SIGTERM is a clean stop:
alerts in flight get their answer and are committed before the group is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from streams.kafka.preflight import check_access
from streams.sinks.delivery import RetryPolicy, UndeliveredTopic
from streams.sinks.dispatch import AlertDispatch
from streams.sinks.follower import FollowParams, follow_alerts, warn_stderr
from streams.sinks.http import Sink


class DeliveryLoop:
    """Follows the alerts topic as ``params`` say and hands every alert to the sinks."""

    def __init__(
        self,
        params: FollowParams,
        sinks: Sequence[Sink],
        policy: RetryPolicy,
        *,
        undelivered_topic: str,
        partitions: int,
        connect_timeout: float,
        show: Callable[[dict[str, Any]], None] | None = None,
        warn: Callable[[str], None] = warn_stderr,
    ) -> None:
        self.params = params
        self.sinks = list(sinks)
        self.policy = policy
        self.undelivered_topic = undelivered_topic
        self.partitions = partitions  # for the topics it creates
        self.connect_timeout = connect_timeout
        self.show = show
        self.warn = warn

    async def run(self) -> int:
        """Follow until done or SIGTERM; 1 if some alert went to the undelivered topic."""
        from streams.kafka.sending import AckedPublisher

        params = self.params
        # A wrong password, certificate or missing ACL ends here with one clear line.
        await check_access(params.kafka, [params.topic], self.connect_timeout, group=params.group)
        producer: Any = None
        try:
            undelivered = None
            if self.sinks:
                await self._ensure_topics()
                # Replaces its producer if a long outage stops it for good.
                producer = AckedPublisher(self.undelivered_topic, params.kafka)
                await producer.start()
                undelivered = UndeliveredTopic(producer, self.undelivered_topic)
            dispatch = AlertDispatch(
                self.sinks, self.policy, undelivered, show=self.show, warn=self.warn
            )
            await self._follow(dispatch)
        finally:
            for sink in self.sinks:
                await sink.close()
            if producer is not None:
                await producer.stop()
        return 1 if dispatch.failures else 0

    async def _ensure_topics(self) -> None:
        """Create the alerts topic too if it is missing, so the group is assigned its
        partitions (and records its start) now rather than at the next metadata refresh,
        when alerts published meanwhile would already be behind "latest". Existing
        topics are used whatever their partition count."""
        from streams.kafka.topics import TopicMismatchError, ensure_topics

        for topic in (self.undelivered_topic, self.params.topic):
            with contextlib.suppress(TopicMismatchError):
                await ensure_topics(self.params.kafka, [topic], self.partitions, attempts=5)

    async def _follow(self, dispatch: AlertDispatch) -> None:
        stop = asyncio.Event()
        with _sigterm_sets(stop):
            await follow_alerts(
                self.params,
                on_record=dispatch.on_record,
                on_undecodable=dispatch.on_undecodable if self.sinks else None,
                on_ready=self._on_ready,
                warn=self.warn,
                stop=stop,
            )
        if stop.is_set():
            self.warn(
                "capflow alerts: stopped by SIGTERM; delivered alerts are committed, "
                "the others are delivered by the next run"
            )

    def _on_ready(self, partitions: list[Any]) -> None:
        if self.sinks:
            names = ", ".join(f"{sink.kind} {sink.target}" for sink in self.sinks)
            self.warn(
                f"capflow alerts: delivering {self.params.topic} to {names} as consumer group "
                f"{self.params.group} ({len(partitions)} partitions); undelivered alerts go to "
                f"{self.undelivered_topic}"
            )


@contextlib.contextmanager
def _sigterm_sets(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM sets ``stop`` while the block runs (where the platform allows a handler)."""
    loop = asyncio.get_running_loop()
    # Not the main thread, or a platform without signal handlers: no graceful SIGTERM.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        yield
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
