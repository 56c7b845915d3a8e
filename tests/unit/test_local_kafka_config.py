"""LocalKafka's server.properties: unchanged by default, complete with extra listeners."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.broker.local import _PROPERTIES, Listener, LocalKafka


def properties(broker: LocalKafka) -> dict[str, str]:
    broker._write_config()
    out: dict[str, str] = {}
    for line in broker.properties.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value  # later lines win, as in java.util.Properties
    return out


def test_default_broker_config_is_the_plaintext_template(tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path, port=30000)
    broker._write_config()
    expected = _PROPERTIES.format(
        host="127.0.0.1", port=30000, controller_port=30001, log_dirs=tmp_path / "data"
    )
    assert broker.properties.read_text() == expected


def test_sasl_and_ssl_listeners_are_declared_advertised_and_mapped(tmp_path: Path) -> None:
    broker = LocalKafka(
        tmp_path,
        port=30000,
        listeners=[Listener("SASL_PLAINTEXT", 30010), Listener("SSL", 30020)],
        scram_users={"alice": "pw-1"},
        properties={"ssl.keystore.location": "/k.p12", "auto.create.topics.enable": "false"},
    )
    props = properties(broker)
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:30000,CONTROLLER://127.0.0.1:30001,"
        "SASL_PLAINTEXT://127.0.0.1:30010,SSL://127.0.0.1:30020"
    )
    assert props["advertised.listeners"] == (
        "PLAINTEXT://127.0.0.1:30000,SASL_PLAINTEXT://127.0.0.1:30010,SSL://127.0.0.1:30020"
    )
    assert props["listener.security.protocol.map"] == (
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL"
    )
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-256"
    assert props["listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    )
    assert props["ssl.keystore.location"] == "/k.p12"
    assert props["auto.create.topics.enable"] == "false"  # extra properties override
    assert "pw-1" not in broker.properties.read_text()  # credentials go to the storage only
    assert broker.listener_bootstrap("SSL") == "127.0.0.1:30020"


@pytest.mark.parametrize("password", ["", "a,b", "x]y", 'q"uote', "sp ace"])
def test_scram_values_that_would_break_the_storage_tool_are_refused(
    tmp_path: Path, password: str
) -> None:
    with pytest.raises(ValueError, match="SCRAM password"):
        LocalKafka(tmp_path, scram_users={"alice": password})


def test_one_listener_per_protocol_and_known_protocols_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at most one"):
        LocalKafka(tmp_path, listeners=[Listener("SSL", 1), Listener("SSL", 2)])
    with pytest.raises(ValueError, match="listener protocol"):
        Listener("PLAINTEXT", 3)
