"""Secrets (the SASL password, the webhook secret) never appear in help, errors or logs."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiokafka.protocol.admin import SaslAuthenticateRequest_v1

from streams import cli
from streams.observability import redact
from streams.settings.declare import SettingError, Settings, declarations, positive_int, setting
from streams.settings.flags import add_settings, secret_values

PASSWORD = "pw-3f9a-never-show"
WEBHOOK_SECRET = "hook-7c1e-never-show"


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPFLOW_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("CAPFLOW_KAFKA_SASL_USERNAME", "alice")
    monkeypatch.setenv("CAPFLOW_WEBHOOK_SECRET", WEBHOOK_SECRET)


@pytest.mark.usefixtures("secrets_in_env")
def test_no_command_help_shows_a_secret_from_the_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = cli.build_parser()  # built after the environment is set: defaults come from it
    texts = {"capflow": parser.format_help()}
    for name in cli.COMMANDS:
        command = name.replace("_", "-")
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        texts[command] = capsys.readouterr().out
    for command, text in texts.items():
        assert PASSWORD not in text, f"capflow {command} --help shows the SASL password"
        assert WEBHOOK_SECRET not in text, f"capflow {command} --help shows the webhook secret"
    # The user name is not secret, and the help still says a password is configured.
    assert "alice" in texts["worker"]
    for command in ("worker", "replay", "record", "alerts", "plot"):
        assert "CAPFLOW_KAFKA_SASL_PASSWORD, set; never shown" in " ".join(
            texts[command].split()
        ), command


def test_help_says_when_no_password_is_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CAPFLOW_KAFKA_SASL_PASSWORD", raising=False)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["replay", "--help"])
    assert "CAPFLOW_KAFKA_SASL_PASSWORD, not set; never shown" in " ".join(
        capsys.readouterr().out.split()
    )


@dataclass(frozen=True)
class _Tokens(Settings):
    some_token: int = setting(1, "a numeric secret", positive_int, secret=True)


def test_an_invalid_secret_value_is_not_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    (token,) = declarations(_Tokens)
    with pytest.raises(SettingError) as err:
        token.from_environment({"CAPFLOW_SOME_TOKEN": "-12345-secret"})
    assert "CAPFLOW_SOME_TOKEN" in str(err.value)
    assert "12345-secret" not in str(err.value)
    parser = argparse.ArgumentParser(prog="p")
    add_settings(parser, _Tokens)
    with pytest.raises(SystemExit):  # the flag's error hides it too
        parser.parse_args(["--some-token=-12345-secret"])
    err_text = capsys.readouterr().err
    assert "--some-token" in err_text and "value hidden" in err_text
    assert "12345-secret" not in err_text


# -- log lines ---------------------------------------------------------------------


@pytest.fixture
def fresh_redaction(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A clean secret set, and the record factory restored afterwards."""
    factory = logging.getLogRecordFactory()
    monkeypatch.setattr(redact, "_secrets", set())
    monkeypatch.setattr(redact, "_previous_factory", None)
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)


@pytest.mark.usefixtures("fresh_redaction")
def test_sasl_plain_login_logged_by_aiokafka_at_debug_shows_no_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    args = cli.build_parser().parse_args(
        ["replay", "f.jsonl", "--kafka-sasl-username", "alice", "--kafka-sasl-password", PASSWORD]
    )
    redact.add_secrets(secret_values(args))
    request = SaslAuthenticateRequest_v1(b"\0alice\0" + PASSWORD.encode())
    with caplog.at_level(logging.DEBUG, logger="aiokafka.conn"):
        # The very call aiokafka makes for every request it sends.
        logging.getLogger("aiokafka.conn").debug(
            "Request to %s:%d %d: %s", "127.0.0.1", 9092, 7, request
        )
    assert "Request to 127.0.0.1:9092 7: SaslAuthenticateRequest_v1" in caplog.text
    assert PASSWORD not in caplog.text and "***" in caplog.text


@pytest.mark.usefixtures("fresh_redaction")
def test_tracebacks_in_logs_are_masked_too(caplog: pytest.LogCaptureFixture) -> None:
    redact.add_secrets([WEBHOOK_SECRET])
    try:
        raise ValueError(f"bad signature key {WEBHOOK_SECRET}")
    except ValueError:
        logging.getLogger("capflow.test").exception("delivery failed")
    assert "ValueError: bad signature key ***" in caplog.text
    assert WEBHOOK_SECRET not in caplog.text


def test_secret_values_come_from_the_secret_settings_only() -> None:
    args = cli.build_parser().parse_args(
        ["alerts", "--kafka-sasl-password", PASSWORD, "--webhook-secret", WEBHOOK_SECRET]
    )
    assert sorted(secret_values(args)) == sorted([PASSWORD, WEBHOOK_SECRET])
