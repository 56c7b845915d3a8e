"""POST alert events to an HTTP endpoint as signed CloudEvents.

Receivers authenticate a delivery with ``verify_signature`` (HMAC-SHA256 of the
exact body with the shared secret) and deduplicate with ``Idempotency-Key`` (the
alert id, deterministic across restarts), so at-least-once delivery is safe. One
call of ``deliver_once`` is one attempt; retries and giving up are the job of
``streams.sinks.delivery``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import orjson

from streams.sinks.http import HttpPoster, PostingSink, Request, redact_url

SIGNATURE_HEADER = "X-Capflow-Signature"
TIMESTAMP_HEADER = "X-Capflow-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
CONTENT_TYPE = "application/cloudevents+json"
USER_AGENT = "capflow-webhook/1"


def sign(secret: str | bytes, body: bytes) -> str:
    """Header value ``sha256=<hex>`` for ``body``; the same function receivers use."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """True when ``header`` is the valid signature of ``body`` (constant-time compare)."""
    if not header:
        return False
    expected = sign(secret, body)
    return hmac.compare_digest(expected.encode(), header.strip().encode())


class WebhookSink(PostingSink):
    """Deliver one CloudEvents JSON body per POST, signed and keyed by the alert id."""

    kind = "webhook"

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        timeout: float = 10.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.poster = HttpPoster(url, timeout)
        self.target = redact_url(url)
        self.secret = secret
        self._clock = clock

    def headers(self, event: dict[str, Any], body: bytes) -> dict[str, str]:
        """Request headers for one delivery (exposed so receivers' tests can reuse them)."""
        headers = {
            "Content-Type": CONTENT_TYPE,
            SIGNATURE_HEADER: sign(self.secret, body),
            TIMESTAMP_HEADER: str(int(self._clock())),
            "User-Agent": USER_AGENT,
        }
        event_id = event.get("id")
        if event_id:
            headers[IDEMPOTENCY_HEADER] = str(event_id)
        return headers

    async def deliver_once(self, event: dict[str, Any]) -> None:
        """One signed POST of ``event``; ``DeliveryError`` if it was not accepted."""
        body = orjson.dumps(event)
        await self.poster.post(Request(body, self.headers(event, body)))
