"""Offsets of handled alerts committed in the background, many in one request.

One commit per alert bounded a backlog to one broker round trip per alert and
partition (aiokafka sends one consumer's commits one after another). Here the
partition's work hands each handled offset in and goes on to the next alert; one
task commits the latest offset of every partition that moved, while the next alerts
are being sent, so a commit covers whatever was handled during the previous one.
Offsets only ever move forward, and ``flush`` waits until everything handed in is
committed: before a partition is revoked and before the follower stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Offsets = dict[Any, int]  # TopicPartition -> next offset


class OffsetCommitter:
    """Commits, per partition, the next offset after the last handled record."""

    def __init__(
        self,
        commit: Callable[[Offsets], Awaitable[Any]],
        assigned: Callable[[], Any],
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._commit = commit  # e.g. AIOKafkaConsumer.commit
        self._assigned = assigned  # partitions this member may commit now
        self._sleep = sleep
        self._pending: Offsets = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._committing = False
        self.requests = 0  # commit requests that succeeded

    def handled(self, tp: Any, next_offset: int) -> None:
        """Records of ``tp`` before ``next_offset`` are handled: commit that soon."""
        if next_offset <= self._pending.get(tp, -1):
            return
        self._pending[tp] = next_offset
        self._idle.clear()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="offset-committer")

    async def flush(self, timeout: float) -> bool:
        """Wait until every offset handed in is committed (or its partition has moved);
        False if that did not happen within ``timeout`` seconds."""
        if self._task is not None and self._task.done():
            self._task.result()  # a bug in the loop: raise it here
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self._idle.is_set()

    def forget(self, partitions: set[Any]) -> None:
        """Drop what was not committed for ``partitions`` (they belong to another member
        now, which reads them again from the last commit)."""
        for tp in partitions:
            self._pending.pop(tp, None)
        if not self._pending and not self._committing:
            self._idle.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, {}
            if batch:
                self._committing = True
                try:
                    await self._commit_until_done(batch)
                finally:
                    self._committing = False
            if not self._pending:
                self._idle.set()

    async def _commit_until_done(self, batch: Offsets) -> None:
        from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

        attempt = 0
        while True:
            assigned = self._assigned()
            offsets = {tp: offset for tp, offset in batch.items() if tp in assigned}
            if len(offsets) < len(batch):
                log.warning("not committing %s: no longer assigned", sorted(batch.keys() - offsets))
            if not offsets:
                return
            try:
                await self._commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # The partitions moved to another member: it reads from the last commit.
                log.warning("commit of %s not possible (%s); partitions moved", offsets, exc)
                return
            except KafkaError as exc:
                attempt += 1
                delay = min(0.5 * attempt, 5.0)
                log.warning("commit of %s failed (%s); retry in %.1fs", offsets, exc, delay)
                await self._sleep(delay)
                # Whatever was handled meanwhile goes into the same retry.
                for tp, offset in self._pending.items():
                    batch[tp] = max(batch.get(tp, -1), offset)
                self._pending = {}
                continue
            self.requests += 1
            return
