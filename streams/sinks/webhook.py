"""POST alert events to an HTTP endpoint, signed, idempotent and retried.

Receivers authenticate a delivery with ``verify_signature`` (HMAC-SHA256 of the
exact body with the shared secret) and deduplicate with ``Idempotency-Key``
(the alert id, deterministic across restarts), so at-least-once delivery with
retries is safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import aiohttp
import orjson

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Capflow-Signature"
TIMESTAMP_HEADER = "X-Capflow-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
CONTENT_TYPE = "application/cloudevents+json"
MAX_RETRY_AFTER = 60.0


class WebhookError(Exception):
    """Delivery failed for good: a non-retryable status, or retries exhausted."""

    def __init__(self, message: str, status: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


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


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("Retry-After") if headers is not None else None
    if raw is None:
        return None
    try:
        return min(max(float(raw), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff


class WebhookSink:
    """Deliver one event per POST, retrying transient failures with backoff and jitter."""

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        max_attempts: int = 5,
        base_backoff: float = 0.5,
        timeout: float = 5.0,
        *,
        max_backoff: float = 30.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.url = url
        self.secret = secret
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WebhookSink:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    def backoff(self, attempt: int) -> float:
        """Delay after failed ``attempt`` (1-based): exponential, capped, with 0-50 % jitter."""
        delay = min(self.base_backoff * (2 ** (attempt - 1)), self.max_backoff)
        return delay * (1.0 + 0.5 * self._rng())

    def headers(self, event: dict[str, Any], body: bytes) -> dict[str, str]:
        """Request headers for one delivery (exposed so receivers' tests can reuse them)."""
        headers = {
            "Content-Type": CONTENT_TYPE,
            SIGNATURE_HEADER: sign(self.secret, body),
            TIMESTAMP_HEADER: str(int(self._clock())),
            "User-Agent": "capflow-webhook/1",
        }
        event_id = event.get("id")
        if event_id:
            headers[IDEMPOTENCY_HEADER] = str(event_id)
        return headers

    async def send(self, event: dict[str, Any]) -> int:
        """POST ``event``; returns the 2xx status or raises ``WebhookError``."""
        body = orjson.dumps(event)
        event_id = event.get("id", "?")
        last_error = "no attempt made"
        last_status: int | None = None
        for attempt in range(1, self.max_attempts + 1):
            wait: float | None = None
            try:
                session = self._get_session()
                async with session.post(
                    self.url, data=body, headers=self.headers(event, body)
                ) as resp:
                    status = resp.status
                    text = (await resp.text(errors="replace"))[:200]
                    if 200 <= status < 300:
                        return status
                    last_status = status
                    last_error = f"HTTP {status}: {text.strip()}"
                    if not _retryable(status):
                        log.error(
                            "webhook %s rejected alert %s with %s; not retrying",
                            self.url,
                            event_id,
                            last_error,
                        )
                        raise WebhookError(
                            f"webhook {self.url} rejected alert {event_id}: {last_error}",
                            status=status,
                            attempts=attempt,
                        )
                    wait = _retry_after(resp.headers)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                last_status = None
                last_error = f"{type(exc).__name__}: {exc}"
            if attempt < self.max_attempts:
                delay = self.backoff(attempt) if wait is None else wait
                log.warning(
                    "webhook %s attempt %d/%d for alert %s failed (%s); retrying in %.2fs",
                    self.url,
                    attempt,
                    self.max_attempts,
                    event_id,
                    last_error,
                    delay,
                )
                await self._sleep(delay)
        raise WebhookError(
            f"webhook {self.url} failed for alert {event_id} after "
            f"{self.max_attempts} attempts: {last_error}",
            status=last_status,
            attempts=self.max_attempts,
        )
