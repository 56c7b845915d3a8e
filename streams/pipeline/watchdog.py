"""The stall watchdog's I/O: every few seconds, the lag of the owned input partitions.

It runs in a thread with its own event loop and Kafka clients, so a worker whose event
loop is wedged (processing blocked, not just waiting) is noticed too. The lag is asked
of the broker, never taken from the worker's consumer: Faust's consumer can stop
fetching while the process stays up, and then its own idea of the end of a partition
stops moving with it. Lag = log end offset - the group's committed offset. Whether a
partition is stalled is decided by ``StallWatch`` (``streams.pipeline.stall``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from typing import Any, cast

from streams.observability.metrics import PARTITION_STALLS
from streams.pipeline.stall import StallReport, StallWatch, check_interval

log = logging.getLogger(__name__)


class OffsetProbe:
    """Log end and committed offsets of a group's partitions, asked of the broker."""

    def __init__(self, client_kwargs: dict[str, Any], group: str) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        self.group = group
        self._consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs)
        self._admin = AIOKafkaAdminClient(**client_kwargs)
        self._consumer_started = self._admin_started = False

    async def lags(self, partitions: Iterable[tuple[str, int]]) -> dict[Any, int]:
        """Records past the committed offset (from the log start when none), per partition."""
        from aiokafka import TopicPartition

        if not self._consumer_started:  # here, in the loop that uses them
            await self._consumer.start()
            self._consumer_started = True
        if not self._admin_started:
            await self._admin.start()
            self._admin_started = True
        tps = [TopicPartition(topic, partition) for topic, partition in partitions]
        ends = await self._consumer.end_offsets(tps)
        committed = await self._admin.list_consumer_group_offsets(self.group, partitions=tps)
        unset = [tp for tp in tps if tp not in committed or committed[tp].offset < 0]
        starts = await self._consumer.beginning_offsets(unset) if unset else {}
        return {
            tp: max(0, ends[tp] - (starts[tp] if tp in starts else committed[tp].offset))
            for tp in tps
        }

    async def close(self) -> None:
        if self._consumer_started:
            await self._consumer.stop()
        if self._admin_started:
            await self._admin.close()


class StallWatchdog:
    """Checks the owned partitions of ``topics`` every few seconds and reports changes."""

    def __init__(
        self,
        probe: Callable[[], OffsetProbe],
        *,
        topics: Collection[str],
        timeout: float,
        owned: Callable[[], Iterable[Any]],
        processed: Mapping[Hashable, int],
        busy: Callable[[], bool],
        on_report: Callable[[StallReport], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe  # made in the watchdog's thread, for its event loop
        self.topics = frozenset(topics)
        self.watch = StallWatch(timeout)
        self.interval = check_interval(timeout)
        self._owned = owned  # the partitions assigned to this worker, any topic
        self._processed = processed  # partition -> offset of the last processed record
        self._busy = busy  # rebalancing or restoring state: no judgment now
        self._on_report = on_report
        self._clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="stall-watchdog", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _main(self) -> None:
        try:
            asyncio.run(self._watch())
        except Exception:  # the worker goes on without its watchdog, but says so
            log.exception("the stall watchdog stopped")

    async def _watch(self) -> None:
        probe = self._probe()
        try:
            while not self._stopping.is_set():
                await asyncio.sleep(self.interval)
                lags = await self._lags(probe)
                report = self.watch.check(self._clock(), lags, dict(self._processed))
                if report and not self._stopping.is_set():
                    self._on_report(report)
        finally:
            await probe.close()

    async def _lags(self, probe: OffsetProbe) -> dict[Any, int | None]:
        owned = sorted((tp.topic, tp.partition) for tp in self._owned() if tp.topic in self.topics)
        if not owned:
            return {}
        if self._busy():
            return dict.fromkeys(owned)
        try:
            lags = await asyncio.wait_for(probe.lags(owned), timeout=max(self.interval, 5.0))
        except Exception as exc:  # the broker did not answer: nothing to judge by now
            log.info("stall watchdog: lag of %s unknown (%r)", ", ".join(sorted(self.topics)), exc)
            return dict.fromkeys(owned)
        return {(tp.topic, tp.partition): lag for tp, lag in lags.items()}


def log_stalls(report: StallReport) -> str | None:
    """Log and count what a check found; a one-line reason when a partition stalled."""
    for tp in report.resumed:
        topic, partition = cast(tuple[str, int], tp)
        log.warning("partition %s[%d] processes records again", topic, partition)
    reasons = []
    for stall in report.stalled:
        topic, partition = cast(tuple[str, int], stall.partition)
        PARTITION_STALLS.labels(str(partition)).inc()
        reason = (
            f"partition {topic}[{partition}] stalled: a lag of {stall.lag} records and none "
            f"processed for {stall.waited:.0f}s"
        )
        log.error("%s", reason)
        reasons.append(reason)
    return "; ".join(reasons) or None


def exit_at_once(reason: str) -> None:
    """Without a worker to stop in order (a pipeline run on its own): end the process."""
    print(f"capflow worker: {reason}; exiting", file=sys.stderr, flush=True)
    os._exit(1)
