"""``capflow worker`` subprocesses for tests and benchmarks: start, watch the log, stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.broker.local import free_port
from streams.devtools.scrape import scrape
from streams.devtools.topics import Topics

# The checkout the worker runs from (the project is installed editable there).
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    """A worker process in its own process group, with its log file and web port."""

    proc: subprocess.Popen[bytes]
    log: Path
    web_port: int
    started: float = field(default_factory=time.time)  # just before it was spawned
    extra: dict[str, Any] = field(default_factory=dict)  # whatever a test keeps with it

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 40) -> str:
        """The last lines of the log, for assertion messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def rss_bytes(self) -> int:
        """Resident set size of the worker process (VmRSS)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def metrics(self) -> str:
        """The worker's Prometheus exposition text."""
        return scrape(self.web_port)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the worker's process group and wait for it to exit."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def start_worker(
    bootstrap: str,
    topics: Topics,
    app_id: str,
    workdir: Path,
    *,
    name: str = "w1",
    opend_port: int = 11111,
    watchlist: Sequence[str] = ("HK.00700",),
    extra: Sequence[str] = (),
    module: str = "streams.cli",
) -> Worker:
    """Start ``capflow worker`` (info log to ``workdir/NAME.log``, data in ``workdir/NAME``);
    ``module`` is what ``python -m`` runs (a test's wrapper around the command line)."""
    web_port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    cmd = [
        sys.executable, "-m", module, "worker",
        "--kafka-bootstrap", bootstrap, "--opend-port", str(opend_port),
        "--watchlist", ",".join(watchlist), "--app-id", app_id,
        "--web-port", str(web_port), "--data-dir", str(workdir / name),
        "--ignore-market-hours", "--loglevel", "info", *topics.args(), *extra,
    ]  # fmt: skip
    started = time.time()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT
        )
    return Worker(proc, log, web_port, started)


@contextmanager
def workers_stopped(*workers: Worker) -> Iterator[None]:
    """Stop the workers (SIGTERM) when the block ends, however it ends."""
    try:
        yield
    finally:
        for w in workers:
            w.kill(signal.SIGTERM if w.proc.poll() is None else signal.SIGKILL)


def tail(worker: Worker, lines: int = 30) -> str:
    """The last lines of a worker's log."""
    return worker.tail(lines)


async def wait_log(worker: Worker, needle: str, timeout: float, poll: float = 0.05) -> float:
    """Wait until ``needle`` appears in the worker's log; the time.time() it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in worker.log_text():
            return time.time()
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited ({worker.proc.returncode}):\n{tail(worker)}")
        await asyncio.sleep(poll)
    raise TimeoutError(f"no {needle!r} in the worker log after {timeout:.0f}s:\n{tail(worker)}")
