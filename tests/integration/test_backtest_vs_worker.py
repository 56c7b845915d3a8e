"""``capflow backtest`` gives the alerts a real worker publishes for the same recording.

The recording is replayed into a fresh topic on the real broker, a ``--no-poller`` worker
processes it, and its alerts topic is compared byte for byte with ``--alerts-out``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from streams.broker.local import free_port
from streams.kafka.topics import ensure_topics
from tests.integration.harness import (
    Topics,
    read_to_end,
    read_topic,
    run_cli,
    start_worker,
    workers_stopped,
)
from tests.unit.test_backtest import swinging_day

pytestmark = pytest.mark.integration

PARAMS = ["--window", "120", "--theta-rel", "0.05", "--confirm", "2", "--cooldown", "300"]


def by_security(payloads: list[bytes]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = defaultdict(list)
    for payload in payloads:
        out[orjson.loads(payload)["subject"]].append(payload)
    return dict(out)


async def test_backtest_alerts_equal_the_workers(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    lines = swinging_day(securities=6, steps=150)
    recording = tmp_path / "day.jsonl"
    recording.write_bytes(b"".join(lines))
    expected_flows = len(set(lines))  # each repeated line is a duplicate: no flow

    alerts_file = tmp_path / "alerts.jsonl"
    code, out, err = await run_cli(
        "backtest", str(recording), "--alerts-out", str(alerts_file), "--quiet", *PARAMS
    )
    assert code == 0, err
    offline = alerts_file.read_bytes().splitlines()
    assert len(offline) >= 6, out  # enough reversals for the comparison to mean something

    topics = Topics(topic_prefix)
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, list(topics.names.values()), 3)
    code, _, err = await run_cli(
        "replay", str(recording), "--quiet",
        "--kafka-bootstrap", kafka_bootstrap, "--topic-distribution", topics.names["distribution"],
    )  # fmt: skip
    assert code == 0, err

    worker = start_worker(
        kafka_bootstrap, topics, f"capflow-bt-{uuid.uuid4().hex[:8]}", tmp_path,
        opend_port=free_port(), watchlist=["HK.00001"], extra=["--no-poller", *PARAMS],
    )  # fmt: skip
    with workers_stopped(worker):
        flows = await read_topic(
            kafka_bootstrap, topics.names["flow"],
            until=lambda r: len(r) >= expected_flows, timeout=120,
        )  # fmt: skip
        assert len(flows) == expected_flows, (len(flows), expected_flows, worker.tail())
        # Alerts are awaited before the state moves on; extras, if any, would be right
        # behind the expected ones: a second's settle catches them.
        alerts = await read_topic(
            kafka_bootstrap, topics.names["alerts"],
            until=lambda r: len(r) >= len(offline), timeout=15, settle=1.0,
        )  # fmt: skip
        online = [r.value for r in alerts]
        assert len(await read_to_end(kafka_bootstrap, topics.names["flow"])) == expected_flows
        assert worker.running(), worker.tail()

    assert sorted(online) == sorted(offline)
    assert by_security(online) == by_security(offline)  # and in the same order per security
