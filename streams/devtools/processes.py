"""Child processes for the demo, the tests and the benchmarks: one way to start and stop them.

A child runs in its own process group (so stopping it stops whatever it started too),
writes its output to a file (readable while it runs, and after), and is stopped with
SIGTERM, then SIGKILL once a bound has passed. ``capflow(...)`` starts
``python -m streams.cli ...`` with this interpreter.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from types import TracebackType


def python_module(module: str) -> list[str]:
    """``python -m MODULE`` with this interpreter, unbuffered (-u): what it prints shows
    in its output file at once."""
    return [sys.executable, "-u", "-m", module]


# ``capflow`` as a command line, whether or not the console script is on PATH.
CAPFLOW = tuple(python_module("streams.cli"))

# How long a child gets to exit after SIGTERM before it is killed.
STOP_BOUND_S = 30.0


class Child:
    """A process started in its own process group, stdin closed, its output in ``log``.

    ``stderr`` names a second file for the error stream (without it both streams go to
    ``log``); ``append`` adds to the files instead of starting them afresh (one log for
    several runs); ``env`` replaces the environment when given. Waits on its output and
    its exit; stopped with SIGTERM, then SIGKILL after a bound.
    """

    def __init__(
        self,
        argv: Sequence[str],
        log: Path,
        *,
        stderr: Path | None = None,
        append: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.log = log
        self.stderr_log = stderr
        log.parent.mkdir(parents=True, exist_ok=True)
        mode = "ab" if append else "wb"
        with ExitStack() as files:
            out = files.enter_context(open(log, mode))
            err = files.enter_context(open(stderr, mode)) if stderr is not None else None
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err if err is not None else subprocess.STDOUT,
                start_new_session=True,
                cwd=cwd,
                env=env,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        """Everything written to ``log`` so far."""
        return _read(self.log)

    def stderr_text(self) -> str:
        """The error stream so far (the combined output when it has no file of its own)."""
        return _read(self.stderr_log) if self.stderr_log is not None else self.log_text()

    def tail(self, lines: int = 40) -> str:
        """The last lines of the output (and of the error stream, when apart), for messages."""
        text = self.log_text()
        if self.stderr_log is not None:
            text += self.stderr_text()
        return "\n".join(text.splitlines()[-lines:])

    async def wait_output(
        self, pattern: str | re.Pattern[str], timeout: float, *, stderr: bool = False
    ) -> re.Match[str]:
        """Wait until ``pattern`` (a regular expression, or a plain string to find) shows
        in the output (or the error stream); the match. Fails at once if the child exits."""
        for match in self._watch(pattern, timeout, stderr):
            if match is not None:
                return match
            await asyncio.sleep(0.05)
        raise AssertionError("_watch ends with a match or an exception")

    def wait_output_sync(
        self, pattern: str | re.Pattern[str], timeout: float, *, stderr: bool = False
    ) -> re.Match[str]:
        """:meth:`wait_output` for code without an event loop (it blocks)."""
        for match in self._watch(pattern, timeout, stderr):
            if match is not None:
                return match
            time.sleep(0.05)
        raise AssertionError("_watch ends with a match or an exception")

    def _watch(
        self, pattern: str | re.Pattern[str], timeout: float, stderr: bool
    ) -> Iterator[re.Match[str] | None]:
        """Yields None while ``pattern`` has not shown, then its match; raises RuntimeError
        if the child exits first, TimeoutError after ``timeout``."""
        regex = re.compile(re.escape(pattern) if isinstance(pattern, str) else pattern)
        read = self.stderr_text if stderr else self.log_text
        deadline = time.monotonic() + timeout
        while True:
            exited = not self.running()  # before reading: what it wrote before exiting counts
            match = regex.search(read())
            if match is not None:
                yield match
                return
            if exited:
                raise RuntimeError(f"{self} exited ({self.proc.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no {regex.pattern!r} from {self} after {timeout:.0f}s:\n{self.tail()}"
                )
            yield None

    async def wait_exit(self, timeout: float) -> int:
        """Wait until the child exits; its exit code. TimeoutError (child left running) if not."""
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self} still running after {timeout:.0f}s:\n{self.tail()}")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def send(self, sig: int) -> None:
        """Send ``sig`` to the child's process group (nothing if it has exited)."""
        if self.running():
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the process group and wait for the child to exit."""
        self.send(sig)
        self.proc.wait(timeout=STOP_BOUND_S)

    def stop(self, timeout: float = STOP_BOUND_S) -> int:
        """SIGTERM to the process group, SIGKILL after ``timeout`` seconds; the exit code."""
        self.send(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.send(signal.SIGKILL)
            return self.proc.wait(timeout=10)

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __str__(self) -> str:
        return f"{type(self).__name__.lower()} {self.proc.pid}"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def capflow(
    *args: str,
    log: Path,
    stderr: Path | None = None,
    append: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Child:
    """Start ``capflow ARGS`` (``python -m streams.cli``, this interpreter) as a :class:`Child`."""
    return Child([*CAPFLOW, *args], log, stderr=stderr, append=append, env=env, cwd=cwd)


def stop_all(children: Sequence[Child], timeout: float = STOP_BOUND_S) -> None:
    """Stop the children together: SIGTERM to each, then SIGKILL to any still running
    ``timeout`` seconds later (they shut down side by side, not one after the other)."""
    for child in children:
        child.send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        child.stop(max(0.0, deadline - time.monotonic()))


@contextmanager
def stopped(*children: Child, timeout: float = STOP_BOUND_S) -> Iterator[None]:
    """Stop the children (:func:`stop_all`) when the block ends, however it ends."""
    try:
        yield
    finally:
        stop_all(children, timeout)
