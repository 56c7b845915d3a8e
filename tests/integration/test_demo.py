"""The README's main command: `capflow demo` starts everything, shows alerts, stops it all."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from streams.broker.local import free_port, port_open

pytestmark = pytest.mark.integration

# "demo: ...", the broker wait ("capflow: waiting for Kafka ..."), alert lines (a date).
OWN_LINE = re.compile(r"^(demo: |capflow: |\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} )")
LIBRARY_NOISE = (
    "NotLeaderForPartition",
    "Failed fetch offsets",
    "coordinator",
    "Heartbeat",
    "aiokafka",
    "faust",
    "Traceback",
)


def test_demo_shows_alerts_and_cleans_up(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--duration", "70", "--speed", "40",
         "--progress", "10", "--port", str(port), "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    alert_lines = [line for line in out.splitlines() if "IN→OUT" in line or "OUT→IN" in line]
    assert alert_lines, out
    assert "HK.01810" not in "".join(alert_lines)  # the quiet control security
    assert "snapshots polled" in out  # progress lines
    for what in ("stopped worker", "stopped OpenD simulator", "stopped Kafka"):
        assert f"demo: {what}" in out, out
    assert not port_open("127.0.0.1", port)
    logs = list((tmp_path / "demo").glob("*/worker.log"))
    assert logs and "polling gateway 127.0.0.1:" in logs[0].read_text()
    assert ": 4 of 4 securities" in logs[0].read_text()
    # Only the demo's own lines reach the terminal: no client library log lines.
    for line in (out + proc.stderr).splitlines():
        assert OWN_LINE.match(line), f"not a demo line: {line!r}"
    for noise in LIBRARY_NOISE:
        assert noise not in out + proc.stderr
    assert proc.stderr == ""
