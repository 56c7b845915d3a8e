"""The at-least-once rules for one alert: every sink takes it, or the undelivered topic does.

For each alert the follower hands over: show it (console), deliver it to every sink at
once (retries and giving up are ``delivery.deliver``'s), and for each sink that did not
take it write the alert unchanged to the undelivered topic with the reason. Only then
does the handler return, and only then does the follower commit the alert. A stop
during a retry pause raises ``Stopped``: the alert is not committed, and whoever reads
the partition next delivers it again (receivers deduplicate by id).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from streams.sinks.delivery import (
    Outcome,
    RetryPolicy,
    SinkHealth,
    Undelivered,
    UndeliveredTopic,
    deliver,
)
from streams.sinks.follower import warn_stderr
from streams.sinks.http import Sink
from streams.sinks.stop import Stopped, StopSignal


def published_at(record: Any) -> float | None:
    """When the alert was written to its topic (the give-up clock starts there)."""
    ts = getattr(record, "timestamp", None)
    return ts / 1000.0 if isinstance(ts, int) and ts > 0 else None


def _letter(record: Any, **why: Any) -> Undelivered:
    """The record as it was read, with ``why`` (stage, error, sink, ...)."""
    return Undelivered(
        key=record.key,
        value=record.value,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        **why,
    )


class AlertDispatch:
    """Hands alerts to the sinks; counts those that some sink never took."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        policy: RetryPolicy,
        undelivered: UndeliveredTopic | None,
        *,
        show: Callable[[dict[str, Any]], None] | None = None,
        warn: Callable[[str], None] = warn_stderr,
    ) -> None:
        if sinks and undelivered is None:
            raise ValueError("sinks need an undelivered topic for what they cannot take")
        self.sinks = list(sinks)
        self.policy = policy
        self.undelivered = undelivered
        self.show = show
        self.warn = warn
        self.health = [SinkHealth() for _ in self.sinks]  # one failure streak per sink
        self.failures = 0  # alerts written to the undelivered topic by a sink

    async def on_record(self, event: dict[str, Any], record: Any, stop: StopSignal) -> None:
        """Show the alert and deliver it to every sink; returns once each sink has it or
        the undelivered topic has it for that sink."""
        if self.show is not None:
            self.show(event)
        if not self.sinks:
            return
        outcomes = await self._deliver_all(event, published_at(record), stop)
        for sink, outcome in zip(self.sinks, outcomes, strict=True):
            if not outcome.delivered:
                await self._set_aside(sink, event, record, outcome, stop)

    async def on_undecodable(self, record: Any, reason: str, stop: StopSignal) -> None:
        """A record that is no alert goes to the undelivered topic as it is."""
        if self.undelivered is None:
            return
        letter = _letter(
            record,
            stage="decode",
            error=reason,
            sink=",".join(sink.kind for sink in self.sinks),
            target=",".join(sink.target for sink in self.sinks),
        )
        await self.undelivered.publish(letter, sleep=stop.sleep)

    async def _deliver_all(
        self, event: dict[str, Any], published: float | None, stop: StopSignal
    ) -> list[Outcome]:
        """Every sink at once; a stop waits for the attempts under way, then raises."""
        results = await asyncio.gather(
            *(
                deliver(
                    sink,
                    event,
                    published_at=published,
                    policy=self.policy,
                    health=health,
                    sleep=stop.sleep,
                )
                for sink, health in zip(self.sinks, self.health, strict=True)
            ),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        for error in errors:
            if not isinstance(error, Stopped):
                raise error
        if errors:
            raise Stopped
        return [r for r in results if isinstance(r, Outcome)]

    async def _set_aside(
        self, sink: Sink, event: dict[str, Any], record: Any, outcome: Outcome, stop: StopSignal
    ) -> None:
        assert self.undelivered is not None
        letter = _letter(
            record,
            stage="deliver",
            error=outcome.reason,
            sink=sink.kind,
            target=sink.target,
            alert_id=str(event.get("id", "")),
            outcome=outcome,
        )
        await self.undelivered.publish(letter, sleep=stop.sleep)
        self.failures += 1
        self.warn(
            f"capflow alerts: alert {event.get('id')} not delivered to {sink.kind} "
            f"{sink.target}: {outcome.reason}; written to {self.undelivered.topic}"
        )
