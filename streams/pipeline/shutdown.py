"""A Faust worker that stops polling the moment it is asked to stop, and exits in bounded time.

Faust stops its services in its own order and waits on Kafka while doing so (commit,
producer flush, leaving the group); with the broker down that takes about a minute,
and the poller would keep spending the OpenD budget meanwhile, next to the worker
that replaces this one. So on SIGTERM/SIGINT polling stops first, synchronously, and
a timer ends the process if the rest of the shutdown has not finished within
``timeout`` seconds. ``fail`` stops the same way from any thread (the stall watchdog's)
and makes the exit status 1, so a supervisor restarts the worker; its timer runs even
when the worker's event loop is wedged and cannot stop anything.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

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
        self._lock = threading.Lock()
        self.failure: str | None = None  # why ``fail`` stopped the worker

    def _schedule_shutdown(self, sig: signal.Signals) -> None:
        if self._before_stop is not None:
            try:
                self._before_stop()
            except Exception:  # stopping must go on whatever happens here
                log.exception("stopping the poller failed")
        self._bound_exit(f"shutdown after {sig.name}", "Kafka unreachable?")
        super()._schedule_shutdown(sig)

    def fail(self, reason: str) -> None:
        """Stop as on SIGTERM, then exit with status 1. Callable from any thread."""
        self.failure = reason
        print(f"capflow worker: {reason}; stopping (exit status 1)", file=sys.stderr, flush=True)
        self._bound_exit("the stop after a stall", "stuck processing holds it up")
        self.loop.call_soon_threadsafe(self._schedule_shutdown, signal.SIGTERM)

    def execute_from_commandline(self) -> NoReturn:
        try:
            super().execute_from_commandline()
        except SystemExit as exc:
            if self.failure is not None and not exc.code:
                raise SystemExit(1) from None
            raise

    def _bound_exit(self, what: str, hint: str) -> None:
        with self._lock:
            if self._watchdog is None:
                self._watchdog = threading.Timer(
                    self._exit_timeout, self._give_up, args=(what, hint)
                )
                self._watchdog.daemon = True
                self._watchdog.start()

    def _give_up(self, what: str, hint: str) -> None:
        print(
            f"capflow worker: {what} did not finish within {self._exit_timeout:g}s "
            f"({hint}); exiting without it",
            file=sys.stderr,
            flush=True,
        )
        with_stdout = getattr(sys.stdout, "flush", None)
        if with_stdout is not None:
            with_stdout()
        os._exit(1)
