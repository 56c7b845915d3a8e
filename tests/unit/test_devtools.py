"""The shared dev harness: topic flags, the strict alert decoder, metrics of a dead worker,
the process launcher."""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from streams.cli import build_parser
from streams.devtools import Child, Topics, alerts_of, free_port, metric, stop_all


def test_topic_flags_parse_back_to_the_same_names() -> None:
    topics = Topics("p")
    args = build_parser().parse_args(["alerts", *topics.args()])
    assert (args.topic_distribution, args.topic_flow, args.topic_alerts, args.topic_deadletter) == (
        "p.distribution",
        "p.flow",
        "p.alerts",
        "p.deadletter",
    )
    assert topics.all() == list(topics.names.values())


def test_alerts_of_rejects_what_a_sink_would_reject() -> None:
    good = SimpleNamespace(value=b'{"id": "a1", "data": {"security": "HK.00700"}}')
    assert alerts_of([good]) == [{"id": "a1", "data": {"security": "HK.00700"}}]
    with pytest.raises(ValueError, match="no 'id'"):
        alerts_of([SimpleNamespace(value=b'{"data": {}}')])


def test_metric_of_an_unreachable_worker_is_zero() -> None:
    assert metric(free_port(), "capflow_alerts_total") == 0.0


# -- the process launcher -------------------------------------------------------------

# A child that says hello on both streams, then waits; it ignores SIGTERM when told to.
CHILD = """
import signal, sys, time
if "stubborn" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("hello out", flush=True)
print("hello err", file=sys.stderr, flush=True)
time.sleep(60)
"""


async def test_child_output_waits_and_term_stop(tmp_path: Path) -> None:
    child = Child([sys.executable, "-c", CHILD], tmp_path / "out", stderr=tmp_path / "err")
    with child:
        match = await child.wait_output(re.compile(r"hello (\w+)"), 30)
        assert match.group(1) == "out"
        await child.wait_output("hello err", 30, stderr=True)
        assert "hello err" not in child.log_text() and child.running()
        with pytest.raises(TimeoutError, match="still running"):
            await child.wait_exit(0.1)
    assert child.returncode == -signal.SIGTERM


async def test_a_child_that_ignores_term_is_killed_after_the_bound(tmp_path: Path) -> None:
    child = Child([sys.executable, "-c", CHILD, "stubborn"], tmp_path / "out")
    await child.wait_output("hello err", 30)  # one file for both streams
    started = time.monotonic()
    assert child.stop(timeout=0.5) == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 10


async def test_stop_all_stops_children_side_by_side(tmp_path: Path) -> None:
    children = [
        Child([sys.executable, "-c", CHILD, "stubborn"], tmp_path / f"out{i}") for i in range(3)
    ]
    for child in children:
        await child.wait_output("hello", 30)
    started = time.monotonic()
    stop_all(children, timeout=0.5)
    assert time.monotonic() - started < 1.5  # one bound for all, not one each
    assert [c.returncode for c in children] == [-signal.SIGKILL] * 3


async def test_waiting_for_output_of_a_child_that_exited_fails_at_once(tmp_path: Path) -> None:
    child = Child([sys.executable, "-c", "print('usage: ...'); exit(2)"], tmp_path / "out")
    with pytest.raises(RuntimeError, match=re.escape("exited (2):\nusage: ...")):
        await child.wait_output("never printed", 60)


def test_append_keeps_what_earlier_runs_wrote(tmp_path: Path) -> None:
    for word in ("first", "second"):
        child = Child([sys.executable, "-c", f"print({word!r})"], tmp_path / "out", append=True)
        assert child.proc.wait(30) == 0
    assert child.log_text().split() == ["first", "second"]
