"""``capflow alerts`` against the real broker: dedupe, bad records, limits, JSON, webhook."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer

from streams.broker.local import free_port
from streams.commands.alerts import FollowParams, follow_alerts
from streams.kafka.topics import ensure_topics
from streams.processing.detector import OUTFLOW_TO_INFLOW
from streams.processing.events import alert_event, alert_payload
from streams.sinks.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify_signature
from tests.integration.harness import make_alert, run_cli

pytestmark = pytest.mark.integration

SECRET = "hook-secret"


A1 = make_alert("HK.00700", 15)
A2 = make_alert("HK.09988", 20, OUTFLOW_TO_INFLOW)
A3 = make_alert("HK.00700", 35, OUTFLOW_TO_INFLOW)
ALERTS = [A1, A2, A3]
# In topic order: A1, A2, A1 again (a restarted detector re-emits it), three records
# that are not alerts, then A3.
GARBAGE = [b"{not json", b'{"id": "x1", "source": "elsewhere"}', None]


@dataclass
class Topic:
    bootstrap: str
    name: str


@pytest.fixture
async def alerts_topic(kafka_bootstrap: str, topic_prefix: str) -> Topic:
    """A fresh one-partition alerts topic holding the records above, in that order."""
    name = f"{topic_prefix}.alerts"
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, [name], 1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for alert in (A1, A2, A1):
            await producer.send_and_wait(name, alert_payload(alert), key=alert.security.encode())
        for value in GARBAGE:
            await producer.send_and_wait(name, value, key=b"HK.00700")
        await producer.send_and_wait(name, alert_payload(A3), key=A3.security.encode())
    finally:
        await producer.stop()
    return Topic(kafka_bootstrap, name)


def params(topic: Topic, **kwargs: Any) -> FollowParams:
    return FollowParams(kafka={"bootstrap_servers": topic.bootstrap}, topic=topic.name, **kwargs)


# -- follow_alerts ---------------------------------------------------------------------


async def test_each_id_once_and_garbage_warned(alerts_topic: Topic) -> None:
    seen: list[dict[str, Any]] = []
    warnings: list[str] = []
    n = await follow_alerts(
        params(alerts_topic, from_beginning=True, max_events=3, timeout=60),
        seen.append,
        warn=warnings.append,
    )
    assert n == 3
    assert [e["id"] for e in seen] == [a.alert_id for a in ALERTS]
    assert seen == [alert_event(a) for a in ALERTS]
    # One warning per undecodable record, naming where it is and what is wrong.
    assert len(warnings) == 3, warnings
    where = [f"{alerts_topic.name}[0]@{offset}" for offset in (3, 4, 5)]
    for text, place in zip(warnings, where, strict=True):
        assert f"skipping undecodable record {place}" in text
    assert "not JSON" in warnings[0]
    assert "no 'data' object" in warnings[1]
    assert "tombstone" in warnings[2]


async def test_timeout_stops_a_follower_that_runs_out_of_alerts(alerts_topic: Topic) -> None:
    seen: list[str] = []

    async def handler(event: dict[str, Any]) -> None:  # awaitable handlers are awaited
        await asyncio.sleep(0)
        seen.append(event["id"])

    started = time.monotonic()
    n = await follow_alerts(
        params(alerts_topic, from_beginning=True, timeout=3.0), handler, warn=lambda _: None
    )
    elapsed = time.monotonic() - started
    assert n == 3 and seen == [a.alert_id for a in ALERTS]
    assert 3.0 <= elapsed < 20.0, elapsed


async def test_max_events_stops_early_and_security_filter(alerts_topic: Topic) -> None:
    first: list[str] = []
    n = await follow_alerts(
        params(alerts_topic, from_beginning=True, max_events=1, timeout=60),
        lambda e: first.append(e["id"]),
        warn=lambda _: None,
    )
    assert (n, first) == (1, [A1.alert_id])

    only: list[str] = []
    n = await follow_alerts(
        params(alerts_topic, from_beginning=True, securities=frozenset({"HK.09988"}), timeout=3),
        lambda e: only.append(e["id"]),
        warn=lambda _: None,
    )
    assert (n, only) == (1, [A2.alert_id])


async def test_latest_skips_history_and_sees_new_alerts(alerts_topic: Topic) -> None:
    seen: list[str] = []
    follower = asyncio.create_task(
        follow_alerts(
            params(alerts_topic, from_beginning=False, max_events=1, timeout=60),
            lambda e: seen.append(e["id"]),
            warn=lambda _: None,
        )
    )
    producer = AIOKafkaProducer(bootstrap_servers=alerts_topic.bootstrap)
    await producer.start()
    fresh = make_alert("HK.01810", 50)
    try:
        # Until the follower has positioned itself at the end, a record may land before
        # it; keep publishing the (same, deduplicated) new alert until it is seen.
        while not follower.done():
            await producer.send_and_wait(alerts_topic.name, alert_payload(fresh), key=b"HK.01810")
            await asyncio.wait({follower}, timeout=0.5)
    finally:
        await producer.stop()
    assert await follower == 1
    assert seen == [fresh.alert_id]


# -- the command line ------------------------------------------------------------------


async def test_cli_json_prints_n_lines(alerts_topic: Topic) -> None:
    code, out, err = await run_cli(
        "alerts", "--from-beginning", "--json", "--max", "3",
        "--kafka-bootstrap", alerts_topic.bootstrap, "--topic-alerts", alerts_topic.name,
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3, out
    assert [orjson.loads(line) for line in lines] == [alert_event(a) for a in ALERTS]
    assert err.count("skipping undecodable record") == 3, err

    code, out, _ = await run_cli(
        "alerts", "--from-beginning", "--json", "--max", "2",
        "--kafka-bootstrap", alerts_topic.bootstrap, "--topic-alerts", alerts_topic.name,
    )  # fmt: skip
    assert code == 0
    assert [orjson.loads(line)["id"] for line in out.splitlines()] == [A1.alert_id, A2.alert_id]


async def test_cli_readable_output_names_security_and_direction(alerts_topic: Topic) -> None:
    code, out, err = await run_cli(
        "alerts", "--from-beginning", "--max", "2", "--security", "HK.09988", "--timeout", "5",
        "--kafka-bootstrap", alerts_topic.bootstrap, "--topic-alerts", alerts_topic.name,
    )  # fmt: skip
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out  # only one alert of HK.09988; --timeout ended the wait
    assert "HK.09988" in lines[0] and "OUT" in lines[0]


@dataclass
class Receiver:
    """A webhook endpoint that accepts only correctly signed deliveries."""

    secret: str
    accepted: list[dict[str, Any]] = field(default_factory=list)
    idempotency_keys: list[str] = field(default_factory=list)
    rejected: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify_signature(self.secret, body, request.headers.get(SIGNATURE_HEADER)):
            self.rejected += 1
            return web.Response(status=401, text="bad signature")
        self.accepted.append(orjson.loads(body))
        self.idempotency_keys.append(request.headers.get(IDEMPOTENCY_HEADER, ""))
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver(SECRET)
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    rec.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()


async def test_cli_webhook_delivers_signed_alerts(alerts_topic: Topic, receiver: Receiver) -> None:
    code, out, err = await run_cli(
        "alerts", "--webhook", receiver.url, "--webhook-secret", SECRET,
        "--from-beginning", "--max", "3", "--quiet",
        "--kafka-bootstrap", alerts_topic.bootstrap, "--topic-alerts", alerts_topic.name,
    )  # fmt: skip
    assert code == 0, err
    assert out == ""  # --quiet: the webhook is the only output
    assert receiver.rejected == 0
    assert receiver.accepted == [alert_event(a) for a in ALERTS]
    assert receiver.idempotency_keys == [a.alert_id for a in ALERTS]


async def test_cli_webhook_with_wrong_secret_fails(alerts_topic: Topic, receiver: Receiver) -> None:
    code, _, err = await run_cli(
        "alerts", "--webhook", receiver.url, "--webhook-secret", "not-the-secret",
        "--from-beginning", "--max", "1", "--quiet",
        "--kafka-bootstrap", alerts_topic.bootstrap, "--topic-alerts", alerts_topic.name,
    )  # fmt: skip
    assert code == 1
    assert receiver.rejected == 1 and receiver.accepted == []  # 401 is not retried
    assert "rejected alert" in err and "401" in err


async def test_cli_webhook_needs_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAPFLOW_WEBHOOK_SECRET", raising=False)
    code, _, err = await run_cli(
        "alerts", "--webhook", "http://127.0.0.1:9/hook", "--kafka-bootstrap", "127.0.0.1:9"
    )
    assert code == 2
    assert "--webhook needs --webhook-secret" in err


async def test_cli_console_with_a_group_resumes_after_the_last_printed_alert(
    alerts_topic: Topic, topic_prefix: str
) -> None:
    group = f"{topic_prefix}.console"
    argv = [
        "alerts", "--json", "--group", group, "--from-beginning", "--max", "1",
        "--kafka-bootstrap", alerts_topic.bootstrap, "--topic-alerts", alerts_topic.name,
    ]  # fmt: skip
    seen = []
    for _ in range(3):
        code, out, err = await run_cli(*argv)
        assert code == 0, err
        seen.append(orjson.loads(out)["id"])
    # Each run starts after what the previous one printed and committed. The re-emitted
    # A1 at offset 2 is new to the third run, so it is shown again (at least once).
    assert seen == [A1.alert_id, A2.alert_id, A1.alert_id]
