"""At-least-once delivery of ``capflow alerts`` sinks against the real broker.

A local HTTP receiver plays the webhook endpoint; ``capflow alerts`` runs as a
separate process so it can be killed with SIGKILL in the middle of its retries.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer

from streams.broker.local import free_port
from streams.kafka.topics import ensure_topics
from streams.processing.detector import OUTFLOW_TO_INFLOW
from streams.processing.events import alert_payload
from streams.sinks.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify_signature
from tests.integration.harness import make_alert, read_topic, run_cli, wait_for

pytestmark = pytest.mark.integration

SECRET = "delivery-secret"


A1 = make_alert("HK.00700", 15)
A2 = make_alert("HK.09988", 20, OUTFLOW_TO_INFLOW)


@dataclass
class Receiver:
    """A webhook endpoint whose answer the test switches; it records every request."""

    status: int = 503
    status_by_id: dict[str, int] = field(default_factory=dict)
    attempts: list[str] = field(default_factory=list)  # alert id of every request
    accepted: list[str] = field(default_factory=list)  # Idempotency-Key of 2xx answers
    bad_signatures: int = 0
    url: str = ""
    # When set, each answer waits for it: a delivery stays in flight until the test says.
    release: asyncio.Event | None = None
    held: list[str] = field(default_factory=list)  # alert ids waiting for ``release``

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify_signature(SECRET, body, request.headers.get(SIGNATURE_HEADER)):
            self.bad_signatures += 1
            return web.Response(status=401)
        event_id = orjson.loads(body)["id"]
        self.attempts.append(event_id)
        if self.release is not None:
            self.held.append(event_id)
            await self.release.wait()
        status = self.status_by_id.get(event_id, self.status)
        if status >= 300:
            return web.Response(status=status, text="try later")
        assert request.headers.get(IDEMPOTENCY_HEADER) == event_id
        self.accepted.append(event_id)
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rec.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()


@dataclass
class Topics:
    bootstrap: str
    alerts: str
    undelivered: str

    async def publish(self, *values: bytes | None, key: bytes = b"HK.00700") -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(self.alerts, value, key=key)
        finally:
            await producer.stop()

    def cli(self, receiver: Receiver, *extra: str) -> list[str]:
        return [
            "alerts", "--webhook", receiver.url, "--webhook-secret", SECRET, "--quiet",
            "--kafka-bootstrap", self.bootstrap, "--topic-alerts", self.alerts,
            "--topic-undelivered", self.undelivered, *extra,
        ]  # fmt: skip


@pytest.fixture
async def topics(kafka_bootstrap: str, topic_prefix: str) -> Topics:
    t = Topics(kafka_bootstrap, f"{topic_prefix}.alerts", f"{topic_prefix}.undelivered")
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, [t.alerts], 1)
    return t


@dataclass
class Follower:
    """``capflow alerts`` as a child process with its stderr in a file."""

    proc: subprocess.Popen[bytes]
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    started: list[Follower] = []

    def start(argv: list[str]) -> Follower:
        log = tmp_path / f"alerts-{len(started)}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", *argv],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        follower = Follower(proc, log)
        started.append(follower)
        return follower

    yield start
    for follower in started:
        if follower.proc.poll() is None:
            follower.proc.kill()
            follower.proc.wait()


async def exited(follower: Follower, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while follower.proc.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"capflow alerts still running:\n{follower.stderr()}")
        await asyncio.sleep(0.2)
    return follower.proc.returncode


async def a1_and_a2_on_two_partitions(kafka_bootstrap: str, topic_prefix: str) -> Topics:
    """A two-partition alerts topic with A1 on partition 0 and A2 on partition 1."""
    topics = Topics(kafka_bootstrap, f"{topic_prefix}.alerts", f"{topic_prefix}.undelivered")
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, [topics.alerts], 2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topics.alerts, alert_payload(A1), partition=0)
        await producer.send_and_wait(topics.alerts, alert_payload(A2), partition=1)
    finally:
        await producer.stop()
    return topics


async def test_kill_9_during_retries_then_restart_delivers_every_alert(
    topics: Topics, receiver: Receiver, spawn: Any
) -> None:
    first = spawn(topics.cli(receiver))
    await wait_for(lambda: "delivering" in first.stderr(), 60, "the follower to join its group")
    await topics.publish(alert_payload(A1))
    # The receiver answers 503: the follower is retrying A1 when it dies.
    await wait_for(lambda: receiver.attempts.count(A1.alert_id) >= 2, 60, "retries of A1")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    assert receiver.accepted == []

    # Produced while no follower runs at all.
    await topics.publish(alert_payload(A2), key=b"HK.09988")
    receiver.status = 204
    second = spawn(topics.cli(receiver, "--max", "2"))
    code = await exited(second, 90)
    assert code == 0, second.stderr()
    assert receiver.bad_signatures == 0
    assert list(dict.fromkeys(receiver.accepted)) == [A1.alert_id, A2.alert_id]

    # Both offsets were committed after delivery: a third run has nothing left to send.
    before = len(receiver.attempts)
    third = spawn(topics.cli(receiver, "--timeout", "12"))
    assert await exited(third, 60) == 0, third.stderr()
    assert "delivering" in third.stderr()  # it did get the partition
    assert len(receiver.attempts) == before


async def test_a_failing_partition_does_not_hold_up_the_others(
    kafka_bootstrap: str, topic_prefix: str, receiver: Receiver, spawn: Any
) -> None:
    # A1 on partition 0: its receiver keeps failing. A2 on partition 1.
    topics = await a1_and_a2_on_two_partitions(kafka_bootstrap, topic_prefix)
    receiver.status, receiver.status_by_id = 204, {A1.alert_id: 503}
    follower = spawn(topics.cli(receiver, "--from-beginning", "--max", "1"))
    assert await exited(follower, 90) == 0, follower.stderr()
    assert "SIGTERM" not in follower.stderr()  # it stopped at --max, by itself
    assert receiver.accepted == [A2.alert_id]
    assert A1.alert_id in receiver.attempts  # it was being retried meanwhile

    # A1 was never committed: once its receiver recovers, the next run delivers it.
    receiver.status_by_id = {}
    again = spawn(topics.cli(receiver, "--max", "1"))
    assert await exited(again, 90) == 0, again.stderr()
    assert receiver.accepted == [A2.alert_id, A1.alert_id]


async def test_follower_started_before_the_topic_exists_delivers(
    kafka_bootstrap: str, topic_prefix: str, receiver: Receiver, spawn: Any
) -> None:
    topics = Topics(kafka_bootstrap, f"{topic_prefix}.alerts", f"{topic_prefix}.undelivered")
    receiver.status = 204
    follower = spawn(topics.cli(receiver, "--max", "1", "--topic-partitions", "2"))
    await wait_for(lambda: "(2 partitions)" in follower.stderr(), 60, "the topic and the group")
    await topics.publish(alert_payload(A1))
    assert await exited(follower, 60) == 0, follower.stderr()
    assert receiver.accepted == [A1.alert_id]


async def test_a_rebalance_in_the_middle_of_retries_loses_nothing(
    kafka_bootstrap: str, topic_prefix: str, receiver: Receiver, spawn: Any
) -> None:
    topics = await a1_and_a2_on_two_partitions(kafka_bootstrap, topic_prefix)
    group = ["--group", f"{topic_prefix}.group", "--from-beginning"]
    first = spawn(topics.cli(receiver, *group))
    await wait_for(
        lambda: {A1.alert_id, A2.alert_id} <= set(receiver.attempts), 60, "both alerts failing"
    )
    # A second member joins: the first gives up a partition in the middle of its retries.
    second = spawn(topics.cli(receiver, *group))
    await wait_for(lambda: "delivering" in second.stderr(), 60, "the second member")
    receiver.status = 204
    await wait_for(
        lambda: {A1.alert_id, A2.alert_id} <= set(receiver.accepted), 60, "both delivered"
    )
    for follower in (first, second):
        follower.proc.send_signal(signal.SIGTERM)
        assert await exited(follower, 30) == 0, follower.stderr()
        assert "stopped by SIGTERM" in follower.stderr()

    # Both were committed after delivery: a new member of the group has nothing to send.
    before = len(receiver.attempts)
    third = spawn(topics.cli(receiver, *group, "--timeout", "20"))
    assert await exited(third, 60) == 0, third.stderr()
    assert "delivering" in third.stderr()
    assert len(receiver.attempts) == before


async def test_sigterm_while_a_delivery_completes_commits_it_before_exiting(
    topics: Topics, receiver: Receiver, spawn: Any
) -> None:
    """SIGTERM reaches the follower while the receiver is answering an alert: the answer
    is awaited and the alert committed before the follower leaves, so the next member of
    the group does not send it again (the cause of the rebalance test's extra delivery)."""
    receiver.status, receiver.release = 204, asyncio.Event()
    await topics.publish(alert_payload(A1))
    first = spawn(topics.cli(receiver, "--from-beginning"))
    await wait_for(lambda: receiver.held == [A1.alert_id], 60, "A1 at the receiver")
    first.proc.send_signal(signal.SIGTERM)
    await wait_for(
        lambda: first.proc.poll() is not None or "in flight" in first.stderr(),
        30,
        "the follower to stop",
    )
    receiver.release.set()
    assert await exited(first, 30) == 0, first.stderr()
    assert receiver.accepted == [A1.alert_id]

    second = spawn(topics.cli(receiver, "--timeout", "12"))
    assert await exited(second, 60) == 0, second.stderr()
    assert "delivering" in second.stderr()  # it did get the partition
    assert receiver.attempts == [A1.alert_id], second.stderr()


async def test_a_rebalance_while_deliveries_complete_commits_them_before_moving(
    kafka_bootstrap: str, topic_prefix: str, receiver: Receiver, spawn: Any
) -> None:
    """A second member joins while the first is waiting for the receiver's answers: the
    first finishes those deliveries and commits them before it gives its partitions up,
    so the group sends each alert once."""
    topics = await a1_and_a2_on_two_partitions(kafka_bootstrap, topic_prefix)
    receiver.status, receiver.release = 204, asyncio.Event()
    first = spawn(topics.cli(receiver, "--from-beginning"))
    await wait_for(
        lambda: sorted(receiver.held) == sorted([A1.alert_id, A2.alert_id]), 60, "both held"
    )
    second = spawn(topics.cli(receiver))
    await wait_for(
        lambda: "in flight" in first.stderr() or "delivering" in second.stderr(),
        60,
        "the rebalance",
    )
    receiver.release.set()
    await wait_for(lambda: "delivering" in second.stderr(), 60, "the second member")
    for follower in (first, second):
        follower.proc.send_signal(signal.SIGTERM)
        assert await exited(follower, 30) == 0, follower.stderr()
    assert sorted(receiver.accepted) == sorted([A1.alert_id, A2.alert_id])
    assert len(receiver.attempts) == 2, (first.stderr(), second.stderr())


def _headers(record: Any) -> dict[str, str]:
    return {key: value.decode() for key, value in record.headers}


@pytest.mark.parametrize("status", [503, 400])
async def test_undeliverable_alert_lands_on_the_undelivered_topic(
    topics: Topics, receiver: Receiver, spawn: Any, status: int
) -> None:
    receiver.status = status
    # An existing undelivered topic is used whatever its partition count.
    await ensure_topics({"bootstrap_servers": topics.bootstrap}, [topics.undelivered], 1)
    await topics.publish(b"{not json", alert_payload(A1))
    follower = spawn(topics.cli(receiver, "--from-beginning", "--give-up-after", "2", "--max", "1"))
    assert await exited(follower, 90) == 1, follower.stderr()
    err = follower.stderr()
    assert f"alert {A1.alert_id} not delivered to webhook http://127.0.0.1" in err
    assert f"written to {topics.undelivered}" in err

    records = await read_topic(topics.bootstrap, topics.undelivered, until=lambda r: len(r) >= 2)
    assert len(records) == 2
    bad, alert = records
    assert (bad.value, _headers(bad)["capflow-error-stage"]) == (b"{not json", "decode")
    assert _headers(bad)["capflow-source-offset"] == "0"

    assert alert.key == b"HK.00700" and alert.value == alert_payload(A1)
    headers = _headers(alert)
    assert headers["capflow-error-stage"] == "deliver"
    assert headers["capflow-sink"] == "webhook"
    assert headers["capflow-sink-target"] == receiver.url.rsplit("/", 1)[0]
    assert headers["capflow-alert-id"] == A1.alert_id
    assert headers["capflow-http-status"] == str(status)
    assert (headers["capflow-source-topic"], headers["capflow-source-offset"]) == (
        topics.alerts,
        "1",
    )
    attempts = int(headers["capflow-attempts"])
    if status == 503:  # retried until the give-up time, then given up
        assert attempts >= 2 and headers["capflow-error"].startswith(f"gave up after {attempts}")
    else:  # 400 is final: one attempt
        assert attempts == 1 and headers["capflow-error"].startswith("rejected:")
    assert receiver.attempts.count(A1.alert_id) == attempts

    # The offset was committed once the undelivered topic had the alert: not sent again.
    receiver.status = 204
    again = spawn(topics.cli(receiver, "--timeout", "12"))
    assert await exited(again, 60) == 0, again.stderr()
    assert "delivering" in again.stderr()  # it did get the partition
    assert receiver.accepted == []


async def test_usage_errors_exit_2() -> None:
    base = ["alerts", "--kafka-bootstrap", "127.0.0.1:9"]
    tg = ["--webhook", "http://127.0.0.1:9/x", "--format", "telegram"]
    cases = [
        (["--format", "slack"], "--format slack needs --webhook"),
        (["--webhook", "http://127.0.0.1:9/x", "--format", "teams"], "--format: 'teams' is not"),
        (tg, "--telegram-chat-id"),
        ([*tg, "--telegram-chat-id", "x"], "numeric chat id"),
        (["--webhook", "ftp://127.0.0.1/x", "--format", "slack"], "expected an http"),
        (["--alertmanager", "http://127.0.0.1:9", "--cooldown", "0"], "cooldown must be"),
        (["--alertmanager", "http://127.0.0.1:9", "--generator-url", "{nope}"], "nope"),
    ]
    env_free = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CAPFLOW_WEBHOOK", "CAPFLOW_TELEGRAM", "CAPFLOW_ALERTMANAGER"))
    }
    for extra, message in cases:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streams.cli", *base, *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env_free,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2, (extra, err)
        assert message in err.decode(), (extra, err)


async def test_give_up_after_must_be_positive() -> None:
    code, _, err = await run_cli("alerts", "--give-up-after", "0", "--kafka-bootstrap", "x:1")
    assert code == 2 and "--give-up-after" in err


@pytest.mark.parametrize("fmt", ["slack", "discord", "telegram"])
async def test_chat_formats_from_the_command_line(topics: Topics, fmt: str) -> None:
    from tests.unit.test_chat_sinks import TOKEN, Service, _make_app

    service = Service()
    runner = web.AppRunner(_make_app(service))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    paths = {
        "slack": "/services/T000/B000/XXXX",
        "discord": "/api/webhooks/1/tok",
        "telegram": f"/bot{TOKEN}/sendMessage",
    }
    try:
        await topics.publish(alert_payload(A1))
        env = {**os.environ, "CAPFLOW_TELEGRAM_CHAT_ID": "@capflow_alerts"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streams.cli", "alerts",
            "--webhook", f"http://127.0.0.1:{port}{paths[fmt]}", "--format", fmt,
            "--from-beginning", "--max", "1", "--quiet",
            "--kafka-bootstrap", topics.bootstrap, "--topic-alerts", topics.alerts,
            "--topic-undelivered", topics.undelivered,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 90)
    finally:
        await runner.cleanup()
    assert proc.returncode == 0, err
    assert f"to {fmt} http://127.0.0.1:{port} as consumer group" in err.decode()
    assert TOKEN not in err.decode() and "XXXX" not in err.decode()
    assert len(service.bodies) == 1 and service.problems == []
    if fmt == "telegram":
        assert service.bodies[0]["chat_id"] == "@capflow_alerts"


async def test_no_broker_is_a_clear_error_not_a_traceback(receiver: Receiver) -> None:
    code, _, err = await run_cli(
        "alerts", "--webhook", receiver.url, "--webhook-secret", SECRET,
        "--kafka-bootstrap", f"127.0.0.1:{free_port()}", "--kafka-connect-timeout", "3",
    )  # fmt: skip
    assert code == 1
    assert "capflow alerts: no Kafka broker answers at 127.0.0.1:" in err
    assert "Traceback" not in err
