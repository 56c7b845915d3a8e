"""A Faust worker that stops polling the moment it is asked to stop, and exits in bounded time.

Faust stops its services in its own order and waits on Kafka while doing so (commit,
producer flush, leaving the group); with the broker down that takes about a minute,
and the poller would keep spending the OpenD budget meanwhile, next to the worker
that replaces this one. So on SIGTERM/SIGINT polling stops first, synchronously, and
a watchdog ends the process if the rest of the shutdown has not finished within
``timeout`` seconds.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import faust

log = logging.getLogger(__name__)


class StoppingWorker(faust.Worker):
    """``faust.Worker`` with ``before_stop`` run first on a stop signal and an exit bound."""

    def __init__(
        self,
        app: faust.App,
        *args: Any,
        before_stop: Callable[[], None] | None = None,
        timeout: float = 15.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, *args, **kwargs)
        self._before_stop = before_stop
        self._exit_timeout = timeout
        self._watchdog: threading.Timer | None = None

    def _schedule_shutdown(self, sig: signal.Signals) -> None:
        if self._before_stop is not None:
            try:
                self._before_stop()
            except Exception:  # stopping must go on whatever happens here
                log.exception("stopping the poller failed")
        if self._watchdog is None:
            self._watchdog = threading.Timer(self._exit_timeout, self._give_up, args=(sig,))
            self._watchdog.daemon = True
            self._watchdog.start()
        super()._schedule_shutdown(sig)

    def _give_up(self, sig: signal.Signals) -> None:
        print(
            f"capflow worker: shutdown after {sig.name} did not finish within "
            f"{self._exit_timeout:g}s (Kafka unreachable?); exiting without it",
            file=sys.stderr,
            flush=True,
        )
        with_stdout = getattr(sys.stdout, "flush", None)
        if with_stdout is not None:
            with_stdout()
        os._exit(1)
