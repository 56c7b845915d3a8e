"""Check, before a command starts, that Kafka answers and accepts our credentials.

aiokafka folds every bootstrap failure, a wrong password included, into "Unable to
bootstrap" and retries it for minutes. One direct connection per bootstrap address
tells the cases apart: a refused login, an untrusted certificate or a topic the user
may not use ends the command at once with one clear message; a broker that does not
answer is retried only up to a bounded time. Messages name the user, never the
password.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterable
from typing import Any

from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.coordination import FindCoordinatorRequest
from aiokafka.protocol.metadata import MetadataRequest

from streams.kafka.errors import KafkaAccessError

DEFAULT_CONNECT_TIMEOUT = 30.0
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
_HINT = "Start one with `capflow kafka start` or set CAPFLOW_KAFKA_BOOTSTRAP."
_AUTH_ERRORS = (
    SaslAuthenticationFailed,
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    UnsupportedSaslMechanismError,
)


def _who(kwargs: dict[str, Any]) -> str:
    user = kwargs.get("sasl_plain_username") or ""
    mechanism = kwargs.get("sasl_mechanism") or "PLAIN"
    return f"user {user!r} (mechanism {mechanism})"


def _auth_failed(kwargs: dict[str, Any], where: str, exc: Exception) -> KafkaAccessError:
    if isinstance(exc, UnsupportedSaslMechanismError):
        return KafkaAccessError(
            f"SASL authentication failed for {_who(kwargs)} at {where}: the broker does not "
            "offer that mechanism. Check CAPFLOW_KAFKA_SASL_MECHANISM."
        )
    detail = str(exc).strip() or type(exc).__name__
    return KafkaAccessError(
        f"SASL authentication failed for {_who(kwargs)} at {where}: {detail}. "
        "Check CAPFLOW_KAFKA_SASL_USERNAME, CAPFLOW_KAFKA_SASL_PASSWORD and "
        "CAPFLOW_KAFKA_SASL_MECHANISM."
    )


def _tls_failed(where: str, exc: ssl.SSLError) -> KafkaAccessError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return KafkaAccessError(
            f"the TLS certificate of Kafka at {where} is not trusted ({exc.verify_message}). "
            "Set CAPFLOW_KAFKA_SSL_CAFILE to the CA that signed it."
        )
    return KafkaAccessError(
        f"TLS handshake with Kafka at {where} failed ({exc.reason or exc}). "
        "Is it an SSL listener? Check CAPFLOW_KAFKA_SECURITY_PROTOCOL."
    )


def _denied_topics(metadata: Any) -> list[str]:
    """Topics a metadata response refuses with TOPIC_AUTHORIZATION_FAILED."""
    denied = []
    for entry in metadata.topics:
        error_code, topic = entry[0], entry[1]
        if error_code == TOPIC_AUTHORIZATION_FAILED:
            denied.append(str(topic))
    return sorted(denied)


async def _probe(
    host: str, port: int, kwargs: dict[str, Any], topics: list[str], group: str, wait: float
) -> tuple[Any, int]:
    """One connection (TLS, SASL), a metadata request and, for a group, its coordinator.

    Returns the metadata response and the coordinator lookup's error code (0 without
    a group): the lookup is how Kafka tells a client it may not use a consumer group.
    """
    conn = await asyncio.wait_for(
        create_conn(
            host,
            port,
            client_id="capflow-preflight",
            request_timeout_ms=max(1000, int(wait * 1000)),
            ssl_context=kwargs.get("ssl_context"),
            security_protocol=kwargs.get("security_protocol", "PLAINTEXT"),
            sasl_mechanism=kwargs.get("sasl_mechanism"),
            sasl_plain_username=kwargs.get("sasl_plain_username"),
            sasl_plain_password=kwargs.get("sasl_plain_password"),
        ),
        wait,
    )
    try:
        request = MetadataRequest(topics, allow_auto_topic_creation=False)
        metadata = await asyncio.wait_for(conn.send(request), wait)
        group_error = 0
        if group:
            found = await asyncio.wait_for(conn.send(FindCoordinatorRequest(group, 0)), wait)
            group_error = int(found.error_code)
        return metadata, group_error
    finally:
        conn.close()


async def check_access(
    kwargs: dict[str, Any],
    topics: Iterable[str] = (),
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
    *,
    group: str | None = None,
) -> None:
    """Connect with the command's aiokafka ``kwargs``; raise KafkaAccessError if Kafka is unusable.

    Authentication, TLS, topic and consumer-group authorization failures raise at once.
    A broker that does not answer is retried (about once a second) for ``timeout`` s.
    """
    bootstrap = str(kwargs.get("bootstrap_servers", ""))
    hosts = [(host, port) for host, port, _ in collect_hosts(bootstrap) if host]
    if not hosts:
        raise KafkaAccessError(f"no Kafka bootstrap address given ({bootstrap!r}). {_HINT}")
    wanted = list(dict.fromkeys(topics))
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while True:
        for host, port in hosts:
            where = f"{host}:{port}"
            wait = max(1.0, min(10.0, deadline - time.monotonic()))
            try:
                metadata, group_error = await _probe(host, port, kwargs, wanted, group or "", wait)
            except _AUTH_ERRORS as exc:
                raise _auth_failed(kwargs, where, exc) from None
            except ssl.SSLError as exc:
                raise _tls_failed(where, exc) from None
            except (OSError, KafkaError, TimeoutError) as exc:
                last_error = f"{where}: {str(exc) or type(exc).__name__}"
                continue
            user = _who(kwargs) if kwargs.get("sasl_mechanism") else "this client"
            denied = _denied_topics(metadata)
            if denied:
                raise KafkaAccessError(
                    f"{user} is not authorized to use topic(s) {', '.join(denied)} "
                    f"at {where}. Ask the cluster's operator for ACLs on them."
                )
            if group_error == GROUP_AUTHORIZATION_FAILED:
                raise KafkaAccessError(
                    f"{user} is not authorized to use consumer group {group!r} at {where}. "
                    "Ask the cluster's operator for an ACL on it."
                )
            return
        if time.monotonic() >= deadline:
            protocol = kwargs.get("security_protocol", "PLAINTEXT")
            raise KafkaAccessError(
                f"no Kafka broker answers at {bootstrap} with {protocol} within {timeout:g}s "
                f"(last error: {last_error}). {_HINT} If a broker listens there, check that "
                "CAPFLOW_KAFKA_SECURITY_PROTOCOL matches its listener."
            )
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def check_access_sync(
    kwargs: dict[str, Any],
    topics: Iterable[str] = (),
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
    *,
    group: str | None = None,
) -> None:
    """``check_access`` for commands that are not inside an event loop yet."""
    asyncio.run(check_access(kwargs, topics, timeout, group=group))
