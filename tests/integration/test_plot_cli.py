"""`capflow plot` reads the flow and alert topics of a real broker and draws the day."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams.kafka.topics import ensure_topics
from streams.pipeline.processor import SecurityProcessor
from streams.processing.flow import Snapshot
from streams.processing.thresholds import ThresholdConfig
from tests.integration.harness import run_cli

pytestmark = pytest.mark.integration

T0 = 1717378200.0  # 2024-06-03 09:30 HKT


def _day() -> tuple[list[bytes], list[bytes]]:
    """Flows and alerts of one synthetic day: large inflow, then a larger outflow."""
    processor = SecurityProcessor(ThresholdConfig())
    state: bytes | None = None
    flows, alerts = [], []
    in_big = out_big = 0.0
    for i in range(80):
        if i < 40:
            in_big += 1_000_000
        else:
            out_big += 1_500_000
        snap = Snapshot(
            security="HK.00700", market="HK", trading_day="2024-06-03", event_ts=T0 + 30 * i,
            in_super=0.0, in_big=in_big, in_mid=500_000.0 * i, in_small=500_000.0 * i,
            out_super=0.0, out_big=out_big, out_mid=500_000.0 * i, out_small=500_000.0 * i,
        )  # fmt: skip
        outcome = processor.process(state, snap)
        state = outcome.state
        if outcome.flow:
            flows.append(outcome.flow)
        if outcome.alert:
            alerts.append(outcome.alert)
    return flows, alerts


async def test_plot_from_kafka(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    flows, alerts = _day()
    assert len(alerts) == 1
    flow_topic, alert_topic = f"{topic_prefix}.flow", f"{topic_prefix}.alerts"
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, [flow_topic, alert_topic], 3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for value in flows:
            await producer.send(flow_topic, value, key=b"HK.00700")
        for value in alerts:
            await producer.send(alert_topic, value, key=b"HK.00700")
        await producer.flush()
    finally:
        await producer.stop()

    out = tmp_path / "day.png"
    code, stdout, stderr = await run_cli(
        "plot", "HK.00700", "-o", str(out), "--kafka-bootstrap", kafka_bootstrap,
        "--topic-flow", flow_topic, "--topic-alerts", alert_topic,
    )  # fmt: skip
    assert code == 0, stderr
    assert f"{len(flows)} flow records, 1 alert" in stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000

    code, _, stderr = await run_cli(
        "plot", "HK.09988", "-o", str(tmp_path / "none.png"), "--kafka-bootstrap",
        kafka_bootstrap, "--topic-flow", flow_topic, "--topic-alerts", alert_topic,
    )  # fmt: skip
    assert code != 0 and "HK.09988" in stderr
