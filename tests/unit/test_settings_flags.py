"""The settings on the command line: CAPFLOW_* defaults, errors, Kafka client kwargs, help."""

from __future__ import annotations

import argparse
import re
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams import cli
from streams.settings import DECLARED, KafkaSettings, OpenDSettings, PollerSettings
from streams.settings.declare import Declared, SettingError, declarations
from streams.settings.flags import add_settings, describe_environment, from_args

ROOT = Path(__file__).resolve().parents[2]
CA_FILE = ROOT / "tests" / "data" / "test-ca.pem"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CAPFLOW_* from the caller's shell may leak into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("CAPFLOW_"):
            monkeypatch.delenv(name)


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def declared(kind: type[Any], field: str) -> Declared:
    return next(d for d in declarations(kind) if d.field == field)


EVERY = [d for kind in DECLARED for d in declarations(kind)]


# -- defaults from the environment ---------------------------------------------------


def test_builtin_defaults_without_environment() -> None:
    args = parse("worker")
    assert args.kafka_bootstrap == "127.0.0.1:19092"
    assert args.opend_port == 11111 and args.opend_host == "127.0.0.1"
    # No watchlist by default: one of --watchlist, --watchlist-file, --watchlist-group.
    assert args.watchlist == () and args.watchlist_file == "" and args.watchlist_group == ""
    assert args.watchlist_refresh == 60.0
    assert args.rate_limit_requests == 30 and args.rate_limit_window == 30.0
    assert args.window == 300.0 and args.theta_rel == 0.10 and args.theta_abs == 0.0
    assert args.confirm == 2 and args.cooldown == 600.0
    assert args.ignore_market_hours is False and args.leader_grace is True
    assert args.topic_distribution == "capflow.distribution.v1"
    assert args.topic_alerts == "capflow.alerts.v1"


def test_environment_sets_defaults_with_their_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPFLOW_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("CAPFLOW_OPEND_PORT", "22222")
    monkeypatch.setenv("CAPFLOW_WATCHLIST", " HK.00700, US.AAPL ,,SH.600519 ")
    monkeypatch.setenv("CAPFLOW_WINDOW", "120.5")
    monkeypatch.setenv("CAPFLOW_CONFIRM", "3")
    monkeypatch.setenv("CAPFLOW_IGNORE_MARKET_HOURS", "Yes")
    monkeypatch.setenv("CAPFLOW_LEADER_GRACE", "off")
    monkeypatch.setenv("CAPFLOW_TOPIC_ALERTS", "my.alerts")
    args = parse("worker")
    assert args.kafka_bootstrap == "k1:9092,k2:9092"
    assert args.opend_port == 22222
    assert args.watchlist == ("HK.00700", "US.AAPL", "SH.600519")
    assert args.window == 120.5 and isinstance(args.window, float)
    assert args.confirm == 3 and isinstance(args.confirm, int)
    assert args.ignore_market_hours is True
    assert args.leader_grace is False
    assert args.topic_alerts == "my.alerts"
    # The same variable feeds every command that has the setting.
    assert parse("alerts").topic_alerts == "my.alerts"
    assert parse("replay", "f.jsonl").kafka_bootstrap == "k1:9092,k2:9092"


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPFLOW_OPEND_PORT", "22222")
    monkeypatch.setenv("CAPFLOW_IGNORE_MARKET_HOURS", "true")
    monkeypatch.setenv("CAPFLOW_WATCHLIST", "HK.00700")
    args = parse(
        "worker", "--opend-port", "33333", "--no-ignore-market-hours", "--watchlist", "US.AAPL,"
    )
    assert args.opend_port == 33333
    assert args.ignore_market_hours is False
    assert args.watchlist == ("US.AAPL",)


def test_help_shows_the_environment_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPFLOW_OPEND_HOST", "opend.internal")
    parser = argparse.ArgumentParser()
    add_settings(parser, OpenDSettings, only=["host"])
    text = " ".join(parser.format_help().split())  # undo argparse's line wrapping
    assert "(env CAPFLOW_OPEND_HOST, default opend.internal)" in text


@pytest.mark.parametrize(
    ("env", "raw"),
    [
        ("CAPFLOW_OPEND_PORT", "eleven"),
        ("CAPFLOW_TOPIC_PARTITIONS", "3.5"),
        ("CAPFLOW_WINDOW", "5m"),
        ("CAPFLOW_THETA_REL", ""),
        ("CAPFLOW_IGNORE_MARKET_HOURS", "maybe"),
        ("CAPFLOW_LEADER_GRACE", "ture"),
    ],
)
def test_bad_environment_value_is_a_clear_exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: str, raw: str
) -> None:
    monkeypatch.setenv(env, raw)
    with pytest.raises(SettingError) as err:
        cli.build_parser()
    assert str(err.value).startswith(f"{env}={raw!r} is not valid: ")
    # Whatever the command: exit status 2 and one line a user can act on, no traceback.
    assert cli.main(["worker"]) == 2
    message = capsys.readouterr().err
    assert message.startswith(f"capflow: {env}={raw!r} is not valid: ")
    assert message.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--opend-port", "x"], "argument --opend-port: 'x' is not valid: expected a whole number"),
        (["--window", "5m"], "argument --window: '5m' is not valid: expected a number"),
        (["--confirm", "0"], "argument --confirm: '0' is not valid: must be >= 1, got 0"),
        (["--schedule", "random"], "argument --schedule: 'random' is not valid: expected one of"),
    ],
)  # fmt: skip
def test_bad_flag_value_is_a_clear_exit(
    argv: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as err:
        cli.main(["worker", *argv])
    assert err.value.code == 2
    assert reason in capsys.readouterr().err


def test_a_variable_is_read_from_a_given_mapping() -> None:
    port = declared(OpenDSettings, "port")
    assert port.from_environment({}) == 11111
    assert port.from_environment({"CAPFLOW_OPEND_PORT": "1"}) == 1
    with pytest.raises(SettingError, match="CAPFLOW_OPEND_PORT='x'"):
        port.from_environment({"CAPFLOW_OPEND_PORT": "x"})
    flag = declared(PollerSettings, "ignore_market_hours")
    for word, value in [("1", True), ("ON", True), ("0", False), ("No", False), ("", False)]:
        assert flag.from_environment({"CAPFLOW_IGNORE_MARKET_HOURS": word}) is value


# -- Kafka client kwargs --------------------------------------------------------------


def kafka_client_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return dict(from_args(args, KafkaSettings).client_kwargs)


def kafka_args(**overrides: Any) -> argparse.Namespace:
    values: dict[str, Any] = {
        "kafka_bootstrap": "broker-1:9093,broker-2:9093",
        "kafka_security_protocol": "PLAINTEXT",
        "kafka_sasl_mechanism": "",
        "kafka_sasl_username": "",
        "kafka_sasl_password": "",
        "kafka_ssl_cafile": "",
    }
    values.update(overrides)
    return argparse.Namespace(**values)


def test_plaintext_passes_only_bootstrap() -> None:
    assert kafka_client_kwargs(kafka_args()) == {"bootstrap_servers": "broker-1:9093,broker-2:9093"}
    # A namespace without the security options at all is PLAINTEXT too.
    bare = argparse.Namespace(kafka_bootstrap="b:1")
    assert kafka_client_kwargs(bare) == {"bootstrap_servers": "b:1"}


def test_sasl_ssl_passes_protocol_context_and_credentials() -> None:
    kwargs = kafka_client_kwargs(
        kafka_args(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="svc-capflow",
            kafka_sasl_password="s3cret",
        )
    )
    context = kwargs.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert kwargs == {
        "bootstrap_servers": "broker-1:9093,broker-2:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc-capflow",
        "sasl_plain_password": "s3cret",
    }


def test_sasl_plaintext_has_no_ssl_context_and_defaults_to_plain() -> None:
    kwargs = kafka_client_kwargs(
        kafka_args(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )
    )
    assert kwargs == {
        "bootstrap_servers": "broker-1:9093,broker-2:9093",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
    }


def test_ssl_with_cafile_trusts_exactly_that_ca() -> None:
    kwargs = kafka_client_kwargs(
        kafka_args(kafka_security_protocol="SSL", kafka_ssl_cafile=str(CA_FILE))
    )
    assert kwargs["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in kwargs
    cas = kwargs["ssl_context"].get_ca_certs()
    subjects = [dict(pair[0] for pair in ca["subject"]) for ca in cas]
    assert subjects == [{"commonName": "capflow test CA"}]


async def test_aiokafka_accepts_the_kwargs_of_every_protocol() -> None:
    cases = [
        kafka_args(),
        kafka_args(kafka_security_protocol="SSL", kafka_ssl_cafile=str(CA_FILE)),
        kafka_args(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u"),
        kafka_args(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-256",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        ),
    ]
    for args in cases:
        kwargs = kafka_client_kwargs(args)
        producer = AIOKafkaProducer(**kwargs)
        consumer = AIOKafkaConsumer("t", **kwargs)
        for client in (producer.client, consumer._client):
            assert client._security_protocol == args.kafka_security_protocol
            assert client._bootstrap_servers == args.kafka_bootstrap
            if args.kafka_security_protocol.startswith("SASL"):
                assert client._sasl_mechanism == (args.kafka_sasl_mechanism or "PLAIN")
                assert client._sasl_plain_username == args.kafka_sasl_username
        await producer.stop()
        await consumer.stop()


# -- the command line ------------------------------------------------------------------


def _variables_read_by_the_package() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "streams").rglob("*.py"):
        if "pb" in path.relative_to(ROOT / "streams").parts:
            continue
        found.update(re.findall(r"\bCAPFLOW_[A-Z][A-Z0-9_]*\b", path.read_text()))
    return found


def test_top_level_help_lists_every_capflow_variable() -> None:
    text = cli.build_parser().format_help()
    listed = set(re.findall(r"^\s+(CAPFLOW_[A-Z0-9_]+)\s", text, flags=re.M))
    assert {d.env for d in EVERY} == listed
    # Every variable the package names is a declared one (webhook, local broker included).
    missing = _variables_read_by_the_package() - listed
    assert not missing, f"capflow --help does not list {sorted(missing)}"
    for decl in EVERY:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(decl.env + " "))
        assert decl.help in line
        if not decl.secret:
            assert line.endswith(f"[{decl.shown(decl.default)}]"), line
    assert describe_environment() in text


def test_every_command_has_working_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    top = parser.format_help()
    for name in cli.COMMANDS:
        command = name.replace("_", "-")
        assert command in top
        with pytest.raises(SystemExit) as err:
            parser.parse_args([command, "--help"])
        assert err.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: capflow {command}"), out[:200]


def test_shared_settings_are_flags_of_the_commands_that_use_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["worker", "--help"])
    worker_help = capsys.readouterr().out
    for decl in EVERY:
        if decl.name in ("kafka_bootstrap", "opend_port", "watchlist", "window", "app_id"):
            assert decl.flag in worker_help and decl.env in worker_help


def test_main_without_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "usage: capflow" in err  # bad usage goes to stderr
    with pytest.raises(SystemExit) as err:
        cli.main(["no-such-command"])
    assert err.value.code == 2


def test_security_protocol_is_case_insensitive_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    args = argparse.Namespace(
        kafka_bootstrap="b:9092",
        kafka_security_protocol="sasl_plaintext",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
        kafka_ssl_cafile="",
    )
    kwargs = kafka_client_kwargs(args)
    assert kwargs["security_protocol"] == "SASL_PLAINTEXT"
    assert kwargs["sasl_plain_username"] == "u"
    args.kafka_security_protocol = "TLS"
    with pytest.raises(ValueError, match="expected one of"):
        kafka_client_kwargs(args)


@pytest.mark.parametrize(
    ("name", "value"),
    [("CAPFLOW_RATE_LIMIT_REQUESTS", "0"), ("CAPFLOW_RATE_LIMIT_WINDOW", "-1"),
     ("CAPFLOW_WINDOW", "nan"), ("CAPFLOW_CONFIRM", "0")],
)  # fmt: skip
def test_non_positive_limits_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match=name):
        cli.build_parser()


def test_worker_refuses_a_malformed_watchlist(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["worker", "--watchlist", "HK.00700,00700,XX.1"])
    out = capsys.readouterr().err
    assert code == 2
    assert "'00700'" in out and "unknown market 'XX'" in out


def test_schedule_and_max_staleness(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse("worker")
    assert args.schedule == "adaptive" and args.max_staleness == 600.0
    monkeypatch.setenv("CAPFLOW_SCHEDULE", "Round-Robin")
    monkeypatch.setenv("CAPFLOW_MAX_STALENESS", "120")
    args = parse("worker")
    assert args.schedule == "round-robin" and args.max_staleness == 120.0
    with pytest.raises(SettingError, match="CAPFLOW_SCHEDULE='random'"):
        declared(PollerSettings, "schedule").from_environment({"CAPFLOW_SCHEDULE": "random"})
    with pytest.raises(SystemExit) as err:
        parse("worker", "--max-staleness", "0")
    assert err.value.code == 2
