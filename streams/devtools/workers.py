"""``capflow worker`` child processes for tests and benchmarks, with their web port.

Starting, watching the log and stopping are the launcher's (``streams.devtools.processes``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streams.broker.local import free_port
from streams.devtools.processes import Child, python_module
from streams.devtools.processes import stopped as workers_stopped
from streams.devtools.scrape import scrape, status_view
from streams.devtools.topics import Topics

__all__ = ["Worker", "start_worker", "workers_stopped"]

# The checkout the worker runs from (the project is installed editable there).
ROOT = Path(__file__).resolve().parents[2]


class Worker(Child):
    """A ``capflow worker`` child process with its web port."""

    def __init__(self, argv: Sequence[str], log: Path, web_port: int) -> None:
        self.web_port = web_port
        self.started = time.time()  # just before it was spawned
        super().__init__(argv, log, cwd=ROOT)

    def rss_bytes(self) -> int:
        """Resident set size of the worker process (VmRSS)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def metrics(self) -> str:
        """The worker's Prometheus exposition text."""
        return scrape(self.web_port)

    def status(self) -> dict[str, Any]:
        """The worker's ``/status/`` view; {} while it does not answer."""
        return status_view(self.web_port)


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
    ignore_market_hours: bool = True,
    module: str = "streams.cli",
) -> Worker:
    """Start ``capflow worker`` (info log to ``workdir/NAME.log``, data in ``workdir/NAME``);
    ``module`` is what ``python -m`` runs (a test's wrapper around the command line). It
    polls whatever the wall clock says unless ``ignore_market_hours`` is off.
    """
    web_port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    cmd = [
        *python_module(module), "worker",
        "--kafka-bootstrap", bootstrap, "--opend-port", str(opend_port),
        "--watchlist", ",".join(watchlist), "--app-id", app_id,
        "--web-port", str(web_port), "--data-dir", str(workdir / name),
        "--loglevel", "info", *topics.args(), *extra,
    ]  # fmt: skip
    if ignore_market_hours:
        cmd.append("--ignore-market-hours")
    return Worker(cmd, log, web_port)
