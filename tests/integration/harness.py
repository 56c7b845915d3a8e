"""Helpers for end-to-end tests: worker subprocesses, topic readers, the scenario's truth."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from streams.broker.local import free_port
from streams.metrics import sample_sum
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.opend_sim.scenario import Reversal, Scenario, load_scenario, reversal_times
from streams.opend_sim.server import OpenDSimulator

DATA = Path(__file__).resolve().parent.parent / "data"
QUIET = {"HK.01810"}  # its large net rate is far below theta: any alert there is a false one


@dataclass
class Topics:
    prefix: str

    @property
    def names(self) -> dict[str, str]:
        return {
            "distribution": f"{self.prefix}.distribution",
            "flow": f"{self.prefix}.flow",
            "alerts": f"{self.prefix}.alerts",
            "deadletter": f"{self.prefix}.deadletter",
        }

    def args(self) -> list[str]:
        n = self.names
        return [
            "--topic-distribution", n["distribution"], "--topic-flow", n["flow"],
            "--topic-alerts", n["alerts"], "--topic-deadletter", n["deadletter"],
        ]  # fmt: skip


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path
    web_port: int
    extra: dict[str, Any] = field(default_factory=dict)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)


def start_worker(
    bootstrap: str,
    opend_port: int,
    topics: Topics,
    watchlist: list[str],
    log_dir: Path,
    *,
    app_id: str,
    name: str = "w1",
    extra: list[str] | None = None,
) -> Worker:
    web_port = free_port()
    log = log_dir / f"{name}.log"
    cmd = [
        sys.executable, "-m", "streams.cli", "worker",
        "--kafka-bootstrap", bootstrap, "--opend-port", str(opend_port),
        "--watchlist", ",".join(watchlist), "--app-id", app_id,
        "--web-port", str(web_port), "--data-dir", str(log_dir / name),
        "--ignore-market-hours", "--loglevel", "info", *topics.args(), *(extra or []),
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Worker(proc, log, web_port)


@contextmanager
def workers_stopped(*workers: Worker) -> Iterator[None]:
    try:
        yield
    finally:
        for w in workers:
            w.kill(signal.SIGTERM if w.proc.poll() is None else signal.SIGKILL)


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Any = None,
    timeout: float = 60.0,
    settle: float = 0.0,
) -> list[Any]:
    """Records of ``topic`` from the start until ``until(records)`` holds (or timeout).

    ``settle`` keeps reading that many seconds after ``until`` held, to catch extras.
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    settled_at: float | None = None
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
            if settled_at is None and until is not None and until(records):
                settled_at = time.monotonic() + settle
            if settled_at is not None and time.monotonic() >= settled_at:
                break
    finally:
        await consumer.stop()
    return records


def alerts_of(records: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records]


def expected_reversals(scenario: Scenario) -> list[Reversal]:
    out = []
    for security, flips in reversal_times(scenario).items():
        if security not in QUIET:
            out.extend(flips)
    return sorted(out, key=lambda r: (r.security, r.at))


async def wait_for(predicate: Any, timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class RequestLog:
    """Wall times of every capital distribution request the simulator answered or refused."""

    def __init__(self, sim: Any) -> None:
        self.times: list[float] = []
        self.refused = 0
        original = sim._capital_distribution

        def recording(conn: Any, request: Any, s2c: Any) -> None:
            self.times.append(time.monotonic())
            try:
                original(conn, request, s2c)
            except Exception:
                self.refused += 1
                raise

        sim._capital_distribution = recording

    def max_in_window(self, window: float) -> int:
        """The most requests any interval of ``window`` seconds holds."""
        best = 0
        j = 0
        for i, t in enumerate(self.times):
            while t - self.times[j] >= window:
                j += 1
            best = max(best, i - j + 1)
        return best


def metric(web_port: int, name: str, label: str = "") -> float:
    """Sum of a Prometheus sample from a worker (0 when absent or unreachable)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics/", timeout=2) as r:
            return sample_sum(r.read().decode(), name, label)
    except OSError:
        return 0.0


async def start_scenario_sim(
    name: str = "reversals.json", seed: int = 11, requests: int = 100, window: float = 10
) -> tuple[OpenDSimulator, Scenario]:
    """A started simulator on a free port, its clock frozen at the scenario start."""
    scenario = load_scenario(DATA / name)
    clock = SimClock(start=scenario.start, speed=0.0)
    sim = OpenDSimulator(
        MarketModel(scenario, seed=seed), clock, rate_limit_requests=requests,
        rate_limit_window=window,
    )  # fmt: skip
    await sim.start()
    return sim, scenario


async def run_cli(*argv: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """``capflow ARGV`` in a subprocess: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams.cli", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
