"""Helpers for end-to-end tests: the scenario's truth, simulators, the CLI in a subprocess.

Workers, topics, readers and metrics come from ``streams.devtools`` (shared with bench/).
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams.devtools import (  # noqa: F401 (the shared dev harness, re-exported for tests)
    Child,
    RequestLog,
    SdkMissing,
    Topics,
    Worker,
    alerts_of,
    capflow,
    free_port,
    metric,
    read_to_end,
    read_topic,
    run_sdk,
    sim_process,
    start_worker,
    workers_stopped,
)
from streams.opend import framing
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.opend_sim.scenario import Reversal, Scenario, load_scenario, reversal_times
from streams.opend_sim.server import OpenDSimulator
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.processing.detector import INFLOW_TO_OUTFLOW, Alert

DATA = Path(__file__).resolve().parent.parent / "data"
ALERT_T0 = 1_717_378_200.0  # 2024-06-03 09:30 HKT
QUIET = {"HK.01810"}  # its large net rate is far below theta: any alert there is a false one


def rate_limit(requests: int, window: float = 10) -> list[str]:
    """Worker flags: ``requests`` per ``window`` seconds, and polling at once (no leader
    grace). The simulator needs the same budget (``start_scenario_sim(requests=...)``)."""
    return [
        "--rate-limit-requests", str(requests), "--rate-limit-window", f"{window:g}",
        "--no-leader-grace",
    ]  # fmt: skip


# 100 requests per 10 s (start_scenario_sim's default): a worker polls at once and fast.
# Tests about the budget itself set their own.
FAST_LIMIT = rate_limit(100)


def expected_reversals(scenario: Scenario) -> list[Reversal]:
    out = []
    for security, flips in reversal_times(scenario).items():
        if security not in QUIET:
            out.extend(flips)
    return sorted(out, key=lambda r: (r.security, r.at))


async def wait_for(
    predicate: Callable[[], object],
    timeout: float,
    what: str | Callable[[], str],
    poll: float = 0.2,
) -> None:
    """Await ``predicate()`` (a value, or an awaitable of one) becoming true, every ``poll``
    seconds; AssertionError after ``timeout``. ``what`` may be a callable, for a message
    that says how far things got."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(poll)
    message = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}")


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


async def exchange(port: int, frames: list[bytes], replies: int) -> list[framing.Frame]:
    """Raw frames sent on one connection; the first ``replies`` frames that come back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"".join(frames))
        await writer.drain()
        decoder = framing.FrameDecoder()
        got: list[framing.Frame] = []
        while len(got) < replies:
            got += decoder.feed(await asyncio.wait_for(reader.read(65536), 3))
        return got
    finally:
        writer.close()


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


def minute_snapshot(minute: int, security: str = "HK.00700") -> bytes:
    """A valid snapshot record ``minute`` minutes into 2024-06-03 (HK), big inflow growing."""
    return DistributionSnapshot(
        security=security, market="HK", qot_market=1, code=security.split(".")[1],
        capital_in_big=1000.0 * minute, update_timestamp=ALERT_T0 + 60 * minute,
        trading_day="2024-06-03", source="test",
    ).SerializeToString()  # fmt: skip


def sdk(script: str, args: list[str], home: Path, stdin: str = "") -> Any:
    """:func:`streams.devtools.run_sdk`, skipping the test where futu-api is missing."""
    try:
        return run_sdk(script, args, home, stdin)
    except SdkMissing:
        pytest.skip("futu-api not installed")


def make_alert(security: str, minute: int, direction: str = INFLOW_TO_OUTFLOW) -> Alert:
    """A confirmed reversal ``minute`` minutes into 2024-06-03, for sink tests."""
    t = ALERT_T0 + 60.0 * minute
    sign = -1.0 if direction == INFLOW_TO_OUTFLOW else 1.0
    return Alert(
        security=security,
        market=security.split(".")[0],
        trading_day="2024-06-03",
        direction=direction,
        event_ts=t + 60.0,
        r_w=sign * 4.2e6,
        threshold=1.5e6,
        window_s=300.0,
        previous_regime="INFLOW" if direction == INFLOW_TO_OUTFLOW else "OUTFLOW",
        previous_peak=-sign * 9.0e6,
        previous_regime_started_ts=ALERT_T0,
        regime_started_ts=t,
        large_net=sign * 1.0e7,
        turnover=8.0e8,
        confirm=2,
    )
