"""WebhookSink and the shared HTTP rules against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from streams.sinks.http import (
    MAX_RETRY_AFTER,
    DeliveryError,
    check_url,
    parse_retry_after,
    redact_url,
    retryable_status,
    scrub_urls,
)
from streams.sinks.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
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
    """Answers with the scripted (status, headers) in order (then 200), records requests."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        return web.Response(status=status, text="nope" if status >= 400 else "ok", headers=headers)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook/T000/secret-path", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.url = f"http://127.0.0.1:{port}/hook/T000/secret-path"
    yield rec
    await runner.cleanup()


def sink(url: str, **kw: Any) -> WebhookSink:
    return WebhookSink(url, SECRET, clock=lambda: 1795570800.0, **kw)


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
    async with sink(receiver.url) as s:
        await s.deliver_once(EVENT)
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert orjson.loads(body) == EVENT
    assert headers["Content-Type"] == "application/cloudevents+json"
    assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER])
    assert headers[IDEMPOTENCY_HEADER] == EVENT["id"]
    assert headers[TIMESTAMP_HEADER] == "1795570800"


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_transient_statuses_are_retryable(receiver: Receiver, status: int) -> None:
    receiver.answers = [(status, {})]
    async with sink(receiver.url) as s:
        with pytest.raises(DeliveryError) as info:
            await s.deliver_once(EVENT)
    assert info.value.retryable is True
    assert info.value.status == status
    assert f"HTTP {status}" in str(info.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
async def test_other_4xx_are_permanent(receiver: Receiver, status: int) -> None:
    receiver.answers = [(status, {})]
    async with sink(receiver.url) as s:
        with pytest.raises(DeliveryError) as info:
            await s.deliver_once(EVENT)
    assert info.value.retryable is False and info.value.status == status


async def test_redirect_is_permanent_and_not_followed(receiver: Receiver) -> None:
    receiver.answers = [(302, {"Location": "http://elsewhere.invalid/other"})]
    async with sink(receiver.url) as s:
        with pytest.raises(DeliveryError, match=r"redirected to http://elsewhere\.invalid") as info:
            await s.deliver_once(EVENT)
    assert info.value.retryable is False and len(receiver.requests) == 1


async def test_retry_after_header_is_passed_on(receiver: Receiver) -> None:
    receiver.answers = [(429, {"Retry-After": "7"})]
    async with sink(receiver.url) as s:
        with pytest.raises(DeliveryError) as info:
            await s.deliver_once(EVENT)
    assert info.value.retry_after == 7.0


async def test_connection_refused_is_retryable_and_hides_the_path() -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with sink(f"http://127.0.0.1:{port}/hook/T000/secret-path") as s:
        with pytest.raises(DeliveryError) as info:
            await s.deliver_once(EVENT)
    assert info.value.retryable is True and info.value.status is None
    assert "secret-path" not in str(info.value)


async def test_timeout_is_retryable(receiver: Receiver) -> None:
    receiver.delays = [1.0]  # the answer arrives after the client gave up
    async with sink(receiver.url, timeout=0.2) as s:
        with pytest.raises(DeliveryError) as info:
            await s.deliver_once(EVENT)
    assert info.value.retryable is True and info.value.status is None
    assert "secret-path" not in str(info.value)


def test_scrub_urls_keeps_only_scheme_host_and_port() -> None:
    text = "Connection timeout to host https://api.telegram.org/bot123:ABC/sendMessage?x=1 now"
    assert scrub_urls(text) == "Connection timeout to host https://api.telegram.org now"
    assert scrub_urls("http://127.0.0.1:9/a/b and http://h") == "http://127.0.0.1:9 and http://h"


def test_status_rules() -> None:
    assert [s for s in range(100, 600) if retryable_status(s)] == [408, 429, *range(500, 600)]


def test_retry_after_parsing() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("1e9") == MAX_RETRY_AFTER
    assert parse_retry_after("nan") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None


def test_urls_are_checked_and_redacted() -> None:
    url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    assert redact_url(url) == "https://hooks.slack.com"
    assert redact_url("http://127.0.0.1:9093/api") == "http://127.0.0.1:9093"
    assert redact_url("not a url") == "<invalid url>"
    assert check_url(url) == url
    for bad in ("ftp://example.com/x", "hooks.slack.com/services/T", "http:///path"):
        with pytest.raises(ValueError, match="expected an http"):
            check_url(bad)
    with pytest.raises(ValueError) as info:
        check_url("ftp://example.com/XXXXSECRET")
    assert "XXXXSECRET" not in str(info.value)
