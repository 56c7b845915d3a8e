"""Typed settings: built once per command from the parsed options, secrets never shown,
and nothing below ``streams.commands`` reads the parsed arguments or the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams import cli
from streams.config import OPTIONS, extra_env
from streams.settings import (
    FlowSettings,
    KafkaSettings,
    OpenDSettings,
    PollerSettings,
    WorkerConfig,
    WorkerSettings,
)

STREAMS = Path(__file__).resolve().parents[2] / "streams"
# The modules that turn the command line and the environment into settings.
ALLOWED = {"cli.py", "config.py", "settings.py", "pb/generate.py"}
# Known and left as is: where the local broker caches its jars (CAPFLOW_CACHE_DIR).
KNOWN_ENV = {"broker/resolve.py"}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for opt in OPTIONS:
        monkeypatch.delenv(opt.env, raising=False)


def _worker_args(*argv: str) -> WorkerConfig:
    return WorkerConfig.from_args(cli.build_parser().parse_args(["worker", *argv]))


def test_the_defaults_are_those_of_the_options_table(clean_env: None) -> None:
    assert _worker_args() == WorkerConfig()


def test_flags_land_in_their_concern(clean_env: None) -> None:
    config = _worker_args(
        "--kafka-bootstrap", "b1:9092,b2:9092", "--topic-flow", "f", "--opend", "h:1=a",
        "--watchlist", "HK.00700,US.AAPL", "--schedule", "round-robin", "--confirm", "3",
        "--thresholds-file", "t.json", "--app-id", "app", "--no-poller",
    )  # fmt: skip
    assert config.kafka.brokers == ["kafka://b1:9092", "kafka://b2:9092"]
    assert config.topics.flow == "f" and config.topics.all()[1] == "f"
    assert config.opend.gateways == "h:1=a"
    assert config.poller == PollerSettings(
        watchlist=("HK.00700", "US.AAPL"), schedule="round-robin"
    )
    assert config.flow == FlowSettings(confirm=3, thresholds_file="t.json")
    assert config.worker == WorkerSettings(app_id="app", poller=False)
    assert config.control_topic == config.gateway_group == "app.gateways"
    assert _worker_args("--gateway-topic", "ctl").control_topic == "ctl"


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        OpenDSettings().host = "elsewhere"  # type: ignore[misc]


def test_the_sasl_password_is_never_in_a_repr(clean_env: None) -> None:
    config = _worker_args(
        "--kafka-security-protocol", "sasl_plaintext", "--kafka-sasl-username", "user",
        "--kafka-sasl-password", "s3cret-pw",
    )  # fmt: skip
    assert config.kafka.security_protocol == "SASL_PLAINTEXT"
    assert config.kafka.client_kwargs["sasl_plain_password"] == "s3cret-pw"
    assert "s3cret-pw" not in repr(config) and "s3cret-pw" not in str(config.kafka)
    assert "user" in repr(config.kafka)


def test_client_kwargs_are_built_once_one_ssl_context_for_every_client() -> None:
    kafka = KafkaSettings(bootstrap="b:1", security_protocol="SSL")
    first = kafka.client_kwargs
    assert kafka.client_kwargs is first
    assert first["security_protocol"] == "SSL" and first["ssl_context"] is not None


def test_a_bad_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="PLAINTEXT"):
        KafkaSettings(security_protocol="TLS")


def test_single_command_variables_come_from_the_listed_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CAPFLOW_KAFKA_PORT", raising=False)
    assert extra_env("CAPFLOW_KAFKA_PORT", 19092, int) == 19092
    monkeypatch.setenv("CAPFLOW_KAFKA_PORT", "29092")
    assert extra_env("CAPFLOW_KAFKA_PORT", 19092, int) == 29092
    monkeypatch.setenv("CAPFLOW_KAFKA_PORT", "x")
    with pytest.raises(SystemExit, match="CAPFLOW_KAFKA_PORT='x' is not valid"):
        extra_env("CAPFLOW_KAFKA_PORT", 19092, int)
    with pytest.raises(KeyError):
        extra_env("CAPFLOW_NOT_LISTED", "", str)


def _modules_below_commands() -> list[tuple[str, str]]:
    out = []
    for path in sorted(STREAMS.rglob("*.py")):
        rel = path.relative_to(STREAMS).as_posix()
        if rel.startswith("commands/") or rel in ALLOWED or rel.startswith("pb/capflow"):
            continue
        if rel.startswith("pb/opend"):
            continue
        out.append((rel, path.read_text()))
    return out


def test_nothing_below_the_commands_sees_the_parsed_arguments() -> None:
    offenders = [rel for rel, text in _modules_below_commands() if re.search(r"\bargparse\b", text)]
    assert offenders == []


def test_nothing_below_the_commands_reads_the_environment() -> None:
    offenders = [
        rel
        for rel, text in _modules_below_commands()
        if re.search(r"\bos\.environ\b|\bgetenv\(", text) and rel not in KNOWN_ENV
    ]
    assert offenders == []
