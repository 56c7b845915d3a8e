"""A stop that lets the step in progress finish and ends every wait at once.

Cancelling a delivery half way loses what it did: an alert the receiver has just
accepted would never be committed, and the next member of the group would send it
again. So a stop (SIGTERM, a partition revoked) is a signal instead: an HTTP attempt
under way runs to its answer, while a backoff or retry pause ends with ``Stopped``,
and the code above it knows the alert was not delivered.
"""

from __future__ import annotations

import asyncio
import contextlib


class Stopped(Exception):
    """A wait ended by a stop: the work it belonged to is not done."""


class StopSignal:
    """Set once to ask the work that holds it to end."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or raise ``Stopped`` as soon as the signal is set."""
        if seconds > 0 and not self.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), seconds)
        if self.is_set():
            raise Stopped
