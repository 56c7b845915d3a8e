"""The Kafka preflight without a broker: bad addresses and silence give one clear error."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from streams.kafka.preflight import KafkaAccessError, check_access


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers a Kafka request."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


@pytest.mark.parametrize("bootstrap", ["", " , "])
async def test_no_bootstrap_address(bootstrap: str) -> None:
    with pytest.raises(KafkaAccessError, match="no Kafka bootstrap address given"):
        await check_access({"bootstrap_servers": bootstrap}, timeout=1)


async def test_a_port_that_never_answers_is_given_up_after_the_timeout(silent_port: int) -> None:
    with pytest.raises(KafkaAccessError) as err:
        await check_access({"bootstrap_servers": f"127.0.0.1:{silent_port}"}, timeout=1.5)
    message = str(err.value)
    assert message.startswith(f"no Kafka broker answers at 127.0.0.1:{silent_port} with PLAINTEXT")
    assert "within 1.5s" in message and "CAPFLOW_KAFKA_SECURITY_PROTOCOL" in message


async def test_refused_connection_names_the_address_and_the_password_never() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = int(probe.getsockname()[1])  # bound, not listening: refused
        kwargs = {
            "bootstrap_servers": f"127.0.0.1:{closed}",
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_plain_username": "alice",
            "sasl_plain_password": "pw-never-in-errors",
        }
        with pytest.raises(KafkaAccessError) as err:
            await check_access(kwargs, ["t"], timeout=1)
    assert f"127.0.0.1:{closed}" in str(err.value)
    assert "pw-never-in-errors" not in str(err.value)
