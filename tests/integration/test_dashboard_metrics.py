"""Every metric and label the Grafana dashboard queries exists in a real worker's /metrics/.

A worker polls the simulator (budget, staleness, requests, lag) and processes snapshots
that reverse (alerts) plus one record that is no snapshot (a dead letter), all on the
real broker; then its exposition is scraped and checked against the dashboard's PromQL.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.devtools import scrape
from streams.kafka.topics import ensure_topics
from streams.offline.recording import from_json_line
from tests.integration.harness import (
    FAST_LIMIT,
    Topics,
    metric,
    start_scenario_sim,
    start_worker,
    wait_for,
    workers_stopped,
)
from tests.unit.test_backtest import swinging_day

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "capflow-dashboard.json"
# Labels Prometheus adds when it scrapes; a worker's exposition never carries them.
SCRAPE_LABELS = {"instance", "job"}


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and template variables."""
    out = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            out.append(query["query"])
    return out


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(capflow_[a-z_]+)\b", expr))


def grouping_labels(expr: str) -> set[str]:
    """Labels used in ``by (...)``, in selectors and legend-worthy label_values calls."""
    labels: set[str] = set()
    for group in re.findall(r"\bby \(([^)]*)\)", expr):
        labels |= {name.strip() for name in group.split(",") if name.strip()}
    for selector in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([a-z_]+)\s*(?:=~|!=|!~|=)", selector))
    return labels - SCRAPE_LABELS


def samples(text: str) -> dict[str, set[str]]:
    """Metric name -> label names seen on its samples in exposition text."""
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? ", line)
        if match and not line.startswith("#"):
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', match.group(2) or ""))
            out.setdefault(match.group(1), set()).update(labels)
    return out


def test_dashboard_is_valid_grafana_json() -> None:
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = queries(dashboard)
    wanted = {
        "capflow_opend_budget",
        "capflow_opend_requests_total",
        "capflow_snapshot_staleness_seconds",
        "capflow_consumer_lag",
        "capflow_snapshots_processed_total",
        "capflow_alerts_total",
        "capflow_deadletters_total",
        "capflow_gateway_state",
        "capflow_gateway_failures_total",
    }
    assert set().union(*map(metric_names, exprs)) == wanted


async def test_every_queried_metric_is_exported_by_a_worker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    sim, _ = await start_scenario_sim()
    topics = Topics(topic_prefix)
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, list(topics.names.values()), 3)
    worker = start_worker(
        kafka_bootstrap, topics, f"capflow-dash-{uuid.uuid4().hex[:8]}", tmp_path,
        opend_port=sim.port, watchlist=["HK.00700", "HK.09988"], extra=FAST_LIMIT,
    )  # fmt: skip
    try:
        with workers_stopped(worker):
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
            await producer.start()
            try:
                for line in swinging_day(securities=2, steps=60):
                    msg = from_json_line(line)
                    await producer.send(
                        topics.names["distribution"],
                        msg.SerializeToString(),
                        key=msg.security.encode(),
                    )
                await producer.send_and_wait(
                    topics.names["distribution"], b"not a snapshot", key=b"HK.00001"
                )
            finally:
                await producer.stop()
            port = worker.web_port

            def driven() -> bool:
                # A request counts when it is sent; staleness has a sample only once
                # its reply (a snapshot) has been received, a moment later.
                return (
                    metric(port, "capflow_alerts_total") > 0
                    and metric(port, "capflow_deadletters_total") > 0
                    and metric(port, "capflow_opend_requests_total") > 0
                    and "capflow_snapshot_staleness_seconds" in samples(scrape(port))
                )

            try:
                await wait_for(driven, 120, "alerts, a dead letter and a polled snapshot")
            except AssertionError:
                raise AssertionError(worker.tail()) from None
            exported = samples(scrape(port))
    finally:
        await sim.stop()

    for expr in queries(dashboard):
        for name in metric_names(expr):
            assert name in exported, f"{name} (queried by {expr!r}) has no sample"
            missing = grouping_labels(expr) - exported[name]
            assert not missing, f"{name} lacks label(s) {missing} used by {expr!r}"
