"""WebhookSink against a real HTTP server on 127.0.0.1: signing, idempotency, retries."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from streams.sinks.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookError,
    WebhookSink,
    sign,
    verify_signature,
)

SECRET = "s3cret"
EVENT: dict[str, Any] = {
    "specversion": "1.0",
    "id": "a1b2c3d4e5f6",
    "source": "capflow/reversal-detector",
    "type": "capflow.alert.reversal.v1",
    "subject": "HK.00700",
    "time": "2026-11-25T01:40:00Z",
    "data": {"security": "HK.00700", "direction": "inflow_to_outflow", "r_w": -1.2e7},
}


@dataclass
class Receiver:
    """Answers with the scripted statuses in order (then 200) and records each request."""

    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="nope" if status >= 400 else "ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.url = f"http://127.0.0.1:{port}/hook"
    yield rec
    await runner.cleanup()


class Sleeps:
    """Injected sleep: records delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def sink(url: str, sleeps: Sleeps, **kw: Any) -> WebhookSink:
    return WebhookSink(url, SECRET, sleep=sleeps, rng=lambda: 0.0, clock=lambda: 1795570800.0, **kw)


def test_verify_signature() -> None:
    body = b'{"id":"x"}'
    header = sign(SECRET, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(SECRET, body, header)
    assert verify_signature(SECRET.encode(), body, header)
    assert not verify_signature("other", body, header)
    assert not verify_signature(SECRET, body + b" ", header)
    assert not verify_signature(SECRET, body, None)
    assert not verify_signature(SECRET, body, "sha256=zz")


async def test_delivers_signed_with_idempotency_key(receiver: Receiver) -> None:
    sleeps = Sleeps()
    async with sink(receiver.url, sleeps) as s:
        assert await s.send(EVENT) == 200
    assert len(receiver.requests) == 1 and sleeps.delays == []
    headers, body = receiver.requests[0]
    assert orjson.loads(body) == EVENT
    assert headers["Content-Type"] == "application/cloudevents+json"
    assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER])
    assert headers[IDEMPOTENCY_HEADER] == EVENT["id"]
    assert headers[TIMESTAMP_HEADER] == "1795570800"


async def test_retries_on_503_then_succeeds(receiver: Receiver) -> None:
    receiver.statuses = [503, 503]
    sleeps = Sleeps()
    async with sink(receiver.url, sleeps, base_backoff=0.5) as s:
        assert await s.send(EVENT) == 200
    assert len(receiver.requests) == 3
    assert sleeps.delays == [0.5, 1.0]  # exponential, jitter fixed at 0 by rng
    keys = {h[IDEMPOTENCY_HEADER] for h, _ in receiver.requests}
    assert keys == {EVENT["id"]}  # every retry carries the same key


async def test_retries_on_429(receiver: Receiver) -> None:
    receiver.statuses = [429]
    sleeps = Sleeps()
    async with sink(receiver.url, sleeps) as s:
        assert await s.send(EVENT) == 200
    assert len(receiver.requests) == 2 and len(sleeps.delays) == 1


async def test_gives_up_on_400_without_retry(receiver: Receiver) -> None:
    receiver.statuses = [400]
    sleeps = Sleeps()
    async with sink(receiver.url, sleeps) as s:
        with pytest.raises(WebhookError, match="HTTP 400") as info:
            await s.send(EVENT)
    assert info.value.status == 400 and info.value.attempts == 1
    assert len(receiver.requests) == 1 and sleeps.delays == []


async def test_gives_up_after_max_attempts(receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    sleeps = Sleeps()
    async with sink(receiver.url, sleeps, max_attempts=3) as s:
        with pytest.raises(WebhookError, match="after 3 attempts") as info:
            await s.send(EVENT)
    assert info.value.status == 500 and info.value.attempts == 3
    assert len(receiver.requests) == 3 and len(sleeps.delays) == 2


async def test_retries_connection_errors() -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    async with sink(f"http://127.0.0.1:{port}/hook", sleeps, max_attempts=2) as s:
        with pytest.raises(WebhookError, match="after 2 attempts") as info:
            await s.send(EVENT)
    assert info.value.status is None and len(sleeps.delays) == 1


async def test_retries_after_timeout(receiver: Receiver) -> None:
    receiver.delays = [1.0]  # first answer arrives after the client gave up
    sleeps = Sleeps()
    async with sink(receiver.url, sleeps, timeout=0.2) as s:
        assert await s.send(EVENT) == 200
    assert len(receiver.requests) == 2 and len(sleeps.delays) == 1


def test_backoff_grows_with_jitter_and_cap() -> None:
    s = WebhookSink("http://x", SECRET, base_backoff=1.0, max_backoff=4.0, rng=lambda: 1.0)
    assert [s.backoff(n) for n in (1, 2, 3, 4)] == [1.5, 3.0, 6.0, 6.0]
