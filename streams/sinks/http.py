"""One HTTP delivery attempt, classified: delivered, worth retrying, or rejected for good.

Every HTTP sink (signed webhook, chat webhooks, Alertmanager) posts through here so
the rules are the same everywhere: 2xx delivers; 408, 429 and 5xx, timeouts and
connection errors are transient; any other status is permanent, because sending the
same request again would get the same answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 300.0  # never wait longer than this on a server's say-so
RETRYABLE_4XX = frozenset({408, 429})


class DeliveryError(Exception):
    """One attempt failed; ``retryable`` says whether another attempt can succeed."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class Sink(Protocol):
    """An alert destination: ``kind`` and ``target`` name it in logs and dead letters."""

    kind: str
    target: str

    async def deliver_once(self, event: dict[str, Any]) -> None:
        """One attempt; raises ``DeliveryError`` when the alert was not accepted."""
        ...

    async def close(self) -> None: ...


def retryable_status(status: int) -> bool:
    """True for statuses where the same request can succeed later."""
    return status in RETRYABLE_4XX or status >= 500


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (capped); None for absent or HTTP-date forms."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` only: chat webhook paths and bot URLs carry secrets."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "<invalid url>"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


_URL_PATH = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s?#]+)[/?#]\S*")


def scrub_urls(text: str) -> str:
    """``text`` with every URL cut to scheme, host and port (library errors quote URLs)."""
    return _URL_PATH.sub(r"\1", text)


def check_url(url: str) -> str:
    """The URL if it is absolute http(s); ValueError naming the problem otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {redact_url(url)!r}")
    return url


@dataclass(frozen=True)
class Request:
    """What one attempt sends: the exact body bytes and their headers."""

    body: bytes
    headers: Mapping[str, str]


# A hook that may read a retry delay out of an error response body (Telegram, Discord).
BodyRetryAfter = Callable[[int, str], float | None]


class HttpPoster:
    """A lazily opened aiohttp session that performs classified POSTs to one URL."""

    def __init__(
        self,
        url: str,
        timeout: float = 10.0,
        body_retry_after: BodyRetryAfter | None = None,
    ) -> None:
        self.url = check_url(url)
        self.timeout = timeout
        self._body_retry_after = body_retry_after
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpPoster:
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

    async def post(self, request: Request) -> int:
        """POST once; the 2xx status, or ``DeliveryError`` saying whether to retry."""
        where = redact_url(self.url)
        try:
            session = self._get_session()
            async with session.post(
                self.url, data=request.body, headers=dict(request.headers), allow_redirects=False
            ) as resp:
                status = resp.status
                text = (await resp.text(errors="replace"))[:300]
                if 200 <= status < 300:
                    return status
                detail = " ".join(text.split())
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if retry_after is None and self._body_retry_after is not None:
                    retry_after = self._body_retry_after(status, text)
                if 300 <= status < 400:
                    detail = f"redirected to {redact_url(resp.headers.get('Location', ''))}"
                raise DeliveryError(
                    f"{where} answered HTTP {status}: {detail}".rstrip(": "),
                    retryable=retryable_status(status),
                    status=status,
                    retry_after=retry_after,
                )
        except DeliveryError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = scrub_urls(str(exc) or "no answer in time")
            raise DeliveryError(
                f"{where}: {type(exc).__name__}: {reason}", retryable=True
            ) from None


class PostingSink:
    """A sink that posts through one :class:`HttpPoster`: usable as an async context."""

    poster: HttpPoster

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.poster.close()
