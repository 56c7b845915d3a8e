"""The README's main command: `capflow demo` starts everything, shows alerts, stops it all."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from streams.broker.local import free_port, port_open
from tests.integration.harness import capflow

pytestmark = pytest.mark.integration

# "demo: ...", the broker wait ("capflow: waiting for Kafka ..."), alert lines (a date).
OWN_LINE = re.compile(r"^(demo: |capflow: |\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} )")
ALERT_LINE = re.compile(r"^.*(?:IN→OUT|OUT→IN).*$", re.M)
LIBRARY_NOISE = (
    "NotLeaderForPartition",
    "Failed fetch offsets",
    "coordinator",
    "Heartbeat",
    "aiokafka",
    "faust",
    "Traceback",
)


async def test_demo_shows_alerts_and_cleans_up(tmp_path: Path) -> None:
    """Run until the first alert and a progress line show, then stop it as a supervisor
    would (SIGTERM, the same path as Ctrl-C): everything it started is stopped."""
    port = free_port()
    demo = capflow(
        "demo", "--speed", "40", "--progress", "5", "--port", str(port),
        "--data-dir", str(tmp_path), log=tmp_path / "stdout", stderr=tmp_path / "stderr",
    )  # fmt: skip
    with demo:
        await demo.wait_output(ALERT_LINE, 240)
        await demo.wait_output("snapshots polled", 60)
        demo.send(signal.SIGTERM)
        code = await demo.wait_exit(90)
    out, err = demo.log_text(), demo.stderr_text()
    assert code == 0, out + err
    alert_lines = ALERT_LINE.findall(out)
    assert alert_lines, out
    assert "HK.01810" not in "".join(alert_lines)  # the quiet control security
    assert "snapshots polled" in out  # progress lines
    for what in ("stopping ...", "stopped worker", "stopped OpenD simulator", "stopped Kafka"):
        assert f"demo: {what}" in out, out
    assert not port_open("127.0.0.1", port)
    logs = list((tmp_path / "demo").glob("*/worker.log"))
    assert logs and "polling gateway 127.0.0.1:" in logs[0].read_text()
    assert ": 4 of 4 securities" in logs[0].read_text()
    # Only the demo's own lines reach the terminal: no client library log lines.
    for line in (out + err).splitlines():
        assert not line or OWN_LINE.match(line), f"not a demo line: {line!r}"
    for noise in LIBRARY_NOISE:
        assert noise not in out + err
    assert err == ""
