"""``capflow alerts --alertmanager`` against a real Alertmanager and the real broker.

The Alertmanager binary comes from Debian's ``prometheus-alertmanager`` (installed by
``scripts/bootstrap.sh --with-test-tools``); each test starts its own on a free port
with a minimal configuration, its own storage and clustering off, and reads the
result back through Alertmanager's own API.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.broker.local import free_port
from streams.kafka.topics import ensure_topics
from streams.processing.detector import INFLOW_TO_OUTFLOW, OUTFLOW_TO_INFLOW, Alert
from streams.processing.events import alert_payload
from tests.integration.harness import Child, run_cli

pytestmark = pytest.mark.integration

CONFIG = 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'


def _binary() -> str:
    for name in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
        )
        if found:
            return found
    message = "no Alertmanager binary: run `bash scripts/bootstrap.sh --with-test-tools`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return orjson.loads(resp.read()) if resp.status == 200 else None


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    binary = _binary()
    port = free_port()
    (tmp_path / "alertmanager.yml").write_text(CONFIG)
    argv = [
        binary,
        f"--config.file={tmp_path / 'alertmanager.yml'}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    base = f"http://127.0.0.1:{port}"
    with Child(argv, tmp_path / "alertmanager.log") as alertmanager:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if not alertmanager.running() or time.monotonic() > deadline:
                raise AssertionError(f"Alertmanager did not start:\n{alertmanager.tail()}")
            time.sleep(0.2)
        yield base


def make_alert(security: str, event_ts: float, direction: str) -> Alert:
    sign = -1.0 if direction == INFLOW_TO_OUTFLOW else 1.0
    return Alert(
        security=security,
        market=security.split(".")[0],
        trading_day=datetime.fromtimestamp(event_ts, UTC).strftime("%Y-%m-%d"),
        direction=direction,
        event_ts=event_ts,
        r_w=sign * 4.25e6,
        threshold=1.5e6,
        window_s=300.0,
        previous_regime="INFLOW" if direction == INFLOW_TO_OUTFLOW else "OUTFLOW",
        previous_peak=-sign * 9.0e6,
        previous_regime_started_ts=event_ts - 1800,
        regime_started_ts=event_ts - 60,
        large_net=sign * 1.0e7,
        turnover=8.0e8,
        confirm=2,
    )


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_alerts_fire_in_alertmanager_and_resolve_after_the_cooldown(
    alertmanager: str, kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = float(int(time.time()))
    recent = make_alert("HK.00700", now - 60, INFLOW_TO_OUTFLOW)  # inside its cooldown
    old = make_alert("US.AAPL", now - 7200, OUTFLOW_TO_INFLOW)  # cooldown long over: late
    monkeypatch.setenv("CAPFLOW_LATE_ALERT_ACTIVE", "1800")
    topic = f"{topic_prefix}.alerts"
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, [topic], 1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for alert in (recent, old):
            await producer.send_and_wait(topic, alert_payload(alert), key=alert.security.encode())
    finally:
        await producer.stop()

    before = time.time()
    code, _, err = await run_cli(
        "alerts", "--alertmanager", alertmanager, "--cooldown", "600",
        "--generator-url", "http://127.0.0.1:6066/flow/{security}/",
        "--from-beginning", "--max", "2", "--quiet",
        "--kafka-bootstrap", kafka_bootstrap, "--topic-alerts", topic,
        "--topic-undelivered", f"{topic_prefix}.undelivered",
    )  # fmt: skip
    after = time.time()
    assert code == 0, err
    assert f"delivering {topic} to alertmanager {alertmanager}" in err

    active = {a["labels"]["security"]: a for a in _get(f"{alertmanager}/api/v2/alerts")}
    assert set(active) == {"HK.00700", "US.AAPL"}, active  # the late one fires too

    late = active["US.AAPL"]
    assert late["status"]["state"] == "active"
    assert _time(late["startsAt"]) == old.event_ts  # when it happened
    # Active for --late-alert-active (here from the environment) after its delivery.
    assert before + 1800 <= _time(late["endsAt"]) <= after + 1800
    late_notes = late["annotations"]
    assert late_notes["late"] == "true" and late_notes["summary"].endswith("[late]")
    assert _time(late_notes["event_time"]) == old.event_ts
    assert before - 1 <= _time(late_notes["delivered_at"]) <= after
    # Delivered between before and after; the time spent publishing counts too.
    delivered_after = float(late_notes["delivered_after"].rstrip("s"))
    assert before - old.event_ts - 1 <= delivered_after <= after - old.event_ts + 1
    assert late_notes["currency"] == "USD" and "USD" in late_notes["description"]

    alert = active["HK.00700"]
    assert "late" not in alert["annotations"]
    assert alert["labels"] == {
        "alertname": "CapflowFlowReversal",
        "security": "HK.00700",
        "market": "HK",
        "direction": "inflow_to_outflow",
    }
    notes = alert["annotations"]
    assert float(notes["r_w"]) == -4.25e6 and float(notes["threshold"]) == 1.5e6
    assert notes["alert_id"] == recent.alert_id and "HK.00700" in notes["summary"]
    assert _time(alert["startsAt"]) == recent.event_ts
    assert _time(alert["endsAt"]) == recent.event_ts + 600
    assert notes["currency"] == "HKD" and "HKD" in notes["description"]
    assert alert["generatorURL"] == "http://127.0.0.1:6066/flow/HK.00700/"
    assert alert["status"]["state"] == "active"

    # Posting again (a re-delivery) updates the same alert instead of adding one.
    code, _, err = await run_cli(
        "alerts", "--alertmanager", alertmanager, "--group", f"{topic_prefix}.again",
        "--from-beginning", "--max", "2", "--quiet",
        "--kafka-bootstrap", kafka_bootstrap, "--topic-alerts", topic,
        "--topic-undelivered", f"{topic_prefix}.undelivered",
    )  # fmt: skip
    assert code == 0, err
    again = _get(f"{alertmanager}/api/v2/alerts")
    assert sorted(a["fingerprint"] for a in again) == sorted(
        a["fingerprint"] for a in active.values()
    )
