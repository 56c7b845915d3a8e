"""Each setting declared once: one field gives the flag, the variable, the default, the
help and the parsed value; settings are typed and frozen, secrets never shown, and
nothing below ``streams.commands`` reads the parsed arguments or the environment."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from streams import cli
from streams.settings import (
    DECLARED,
    FlowSettings,
    KafkaSettings,
    LocalKafkaSettings,
    OpenDSettings,
    PipelineSettings,
    PollerSettings,
    Settings,
    SinkSettings,
    WorkerSettings,
)
from streams.settings.declare import (
    Declared,
    SettingError,
    declarations,
    from_environment,
    positive_int,
    setting,
)
from streams.settings.flags import add_settings, from_args

STREAMS = Path(__file__).resolve().parents[2] / "streams"
# The modules that turn the command line and the environment into settings.
ALLOWED = {"cli.py", "settings/declare.py", "settings/flags.py", "pb/generate.py"}

EVERY = [d for kind in DECLARED for d in declarations(kind)]
# A text for every setting that parses to something other than its default.
SAMPLES = {str: "x.example:1", int: "7", float: "2.5", tuple: "HK.00700, US.AAPL"}
CHOICES = {
    "kafka_security_protocol": ("sasl_ssl", "SASL_SSL"),
    "schedule": ("Round-Robin", "round-robin"),
    "webhook_format": ("Slack", "slack"),
    "stall_action": ("Log", "log"),
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for decl in EVERY:
        monkeypatch.delenv(decl.env, raising=False)


def _sample(decl: Declared) -> tuple[str, object, list[str]]:
    """A text for ``decl``, the value it must parse to, and the flags that give it."""
    if isinstance(decl.default, bool):
        raw = "no" if decl.default else "yes"
        off = "--no-" + decl.flag.removeprefix("--")
        return raw, not decl.default, [off if decl.default else decl.flag]
    raw, value = CHOICES.get(decl.name) or (SAMPLES[type(decl.default)], None)
    return raw, decl.parse(raw) if value is None else value, [decl.flag, raw]


# -- the declarations ----------------------------------------------------------------


def test_every_settings_field_is_declared_with_flag_variable_default_and_help() -> None:
    for kind in DECLARED:
        declared = {d.field for d in declarations(kind)}
        assert declared == {f.name for f in fields(kind)}, kind.__name__
        assert kind.title, kind.__name__
    for decl in EVERY:
        assert re.fullmatch(r"--[a-z][a-z0-9-]*", decl.flag), decl
        assert decl.env == "CAPFLOW_" + decl.name.upper()
        assert re.fullmatch(r"CAPFLOW_[A-Z][A-Z0-9_]*", decl.env), decl
        assert decl.help and decl.help == decl.help.strip()
        # The default is a value of the setting, and its parser accepts it back.
        if not decl.secret:
            assert decl.parse(decl.shown(decl.default)) == decl.default, decl.name


def test_names_flags_and_variables_are_unique() -> None:
    for attr in ("name", "flag", "env"):
        values = [getattr(d, attr) for d in EVERY]
        assert len(values) == len(set(values)), attr


def test_every_settings_type_is_listed() -> None:
    """A new settings type must be in DECLARED, or ``capflow --help`` would not list it."""
    import streams.settings as module

    kinds = {
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Settings) and obj is not Settings
    }
    assert kinds - {PipelineSettings} == set(DECLARED)


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("decl", EVERY, ids=[d.name for d in EVERY])
def test_the_variable_and_the_flag_give_the_same_value(
    decl: Declared, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, expected, argv = _sample(decl)
    assert expected != decl.default

    def parsed(argv: list[str]) -> object:
        parser = argparse.ArgumentParser()
        add_settings(parser, *DECLARED)
        return getattr(parser.parse_args(argv), decl.name)

    assert parsed([]) == decl.default
    from_flag = parsed(argv)
    monkeypatch.setenv(decl.env, raw)
    from_variable = parsed([])
    assert from_flag == from_variable == expected


def test_the_defaults_are_the_declarations(clean_env: None) -> None:
    args = cli.build_parser().parse_args(["worker"])
    assert from_args(args, PipelineSettings) == PipelineSettings()
    assert PollerSettings().schedule == "adaptive" == args.schedule  # one default, everywhere
    assert from_environment(PipelineSettings, {}) == PipelineSettings()


def test_a_declaration_is_one_line() -> None:
    @dataclass(frozen=True)
    class Example(Settings):
        prefix = "example_"
        title = "example"

        count: int = setting(3, "how many", positive_int)
        token: str = setting("", "an API token", secret=True)

    count, token = declarations(Example)
    assert (count.flag, count.env, count.default) == ("--example-count", "CAPFLOW_EXAMPLE_COUNT", 3)
    assert token.secret and "t0ken-value" not in repr(Example(token="t0ken-value"))
    parser = argparse.ArgumentParser()
    add_settings(parser, Example)
    assert from_args(parser.parse_args(["--example-count", "5"]), Example) == Example(count=5)
    assert from_environment(Example, {"CAPFLOW_EXAMPLE_COUNT": "9"}).count == 9


def test_flags_land_in_their_concern(clean_env: None) -> None:
    args = cli.build_parser().parse_args(
        ["worker", "--kafka-bootstrap", "b1:9092,b2:9092", "--topic-flow", "f",
         "--opend", "h:1=a", "--watchlist", "HK.00700,US.AAPL", "--schedule", "round-robin",
         "--confirm", "3", "--thresholds-file", "t.json", "--app-id", "app", "--no-poller"]
    )  # fmt: skip
    config = from_args(args, PipelineSettings)
    assert config.kafka.brokers == ["kafka://b1:9092", "kafka://b2:9092"]
    assert config.topics.flow == "f" and config.topics.all()[1] == "f"
    assert config.opend.gateways == "h:1=a"
    assert config.poller == PollerSettings(
        watchlist=("HK.00700", "US.AAPL"), schedule="round-robin"
    )
    assert config.flow == FlowSettings(confirm=3, thresholds_file="t.json")
    assert config.worker == WorkerSettings(app_id="app", poller=False)
    assert config.control_topic == config.gateway_group == "app.gateways"
    ctl = cli.build_parser().parse_args(["worker", "--gateway-topic", "ctl"])
    assert from_args(ctl, PipelineSettings).control_topic == "ctl"


def test_a_command_offers_only_the_settings_it_names(clean_env: None) -> None:
    args = cli.build_parser().parse_args(["fetch", "HK.00700", "--opend-port", "2"])
    assert not hasattr(args, "opend")  # fetch talks to one gateway
    assert from_args(args, OpenDSettings) == OpenDSettings(port=2)
    parser = argparse.ArgumentParser()
    with pytest.raises(KeyError, match="no such setting: nope"):
        add_settings(parser, OpenDSettings, only=["host", "nope"])


def test_single_command_settings_come_from_declarations_too(
    clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPFLOW_KAFKA_PORT", "29092")
    monkeypatch.setenv("CAPFLOW_CACHE_DIR", "/tmp/jars")
    monkeypatch.setenv("CAPFLOW_ALERTMANAGER_URL", "http://a:9093, http://b:9093")
    parser = cli.build_parser()
    local = from_args(parser.parse_args(["kafka", "status"]), LocalKafkaSettings)
    assert (local.port, local.cache_dir) == (29092, "/tmp/jars")
    assert from_args(parser.parse_args(["demo", "--port", "3"]), LocalKafkaSettings).port == 3
    sinks = from_args(parser.parse_args(["alerts"]), SinkSettings)
    assert sinks.alertmanager_url == ("http://a:9093", "http://b:9093")
    # A repeatable flag replaces the variable's list, its repeats add up.
    argv = ["alerts", "--alertmanager", "http://c:1", "--alertmanager", "http://d:1,http://e:1"]
    sinks = from_args(parser.parse_args(argv), SinkSettings)
    assert sinks.alertmanager_url == ("http://c:1", "http://d:1", "http://e:1")
    monkeypatch.setenv("CAPFLOW_KAFKA_PORT", "x")
    with pytest.raises(SettingError, match="CAPFLOW_KAFKA_PORT='x' is not valid"):
        cli.build_parser()


# -- the typed values ------------------------------------------------------------------


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        OpenDSettings().host = "elsewhere"  # type: ignore[misc]


def test_a_text_given_in_code_is_parsed_like_the_variable() -> None:
    assert KafkaSettings(security_protocol="sasl_ssl").security_protocol == "SASL_SSL"
    with pytest.raises(ValueError, match="PLAINTEXT"):
        KafkaSettings(security_protocol="TLS")
    listed = PollerSettings(watchlist="HK.00700, US.AAPL")  # type: ignore[arg-type]
    assert listed.watchlist == ("HK.00700", "US.AAPL")


def test_the_sasl_password_is_never_in_a_repr(clean_env: None) -> None:
    args = cli.build_parser().parse_args(
        ["worker", "--kafka-security-protocol", "sasl_plaintext", "--kafka-sasl-username",
         "user", "--kafka-sasl-password", "s3cret-pw"]
    )  # fmt: skip
    config = from_args(args, PipelineSettings)
    assert config.kafka.security_protocol == "SASL_PLAINTEXT"
    assert config.kafka.client_kwargs["sasl_plain_password"] == "s3cret-pw"
    assert "s3cret-pw" not in repr(config) and "s3cret-pw" not in str(config.kafka)
    assert "user" in repr(config.kafka)


def test_client_kwargs_are_built_once_one_ssl_context_for_every_client() -> None:
    kafka = KafkaSettings(bootstrap="b:1", security_protocol="SSL")
    first = kafka.client_kwargs
    assert kafka.client_kwargs is first
    assert first["security_protocol"] == "SSL" and first["ssl_context"] is not None


# -- the layering ----------------------------------------------------------------------


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
        if re.search(r"\bos\.environ\b|\bgetenv\(", text)
    ]
    assert offenders == []


def test_the_settings_package_imports_nothing_of_the_commands() -> None:
    """One direction: commands read settings; settings know no command (no cycle)."""
    for path in (STREAMS / "settings").glob("*.py"):
        imports = r"^\s*(from|import) streams\.(cli|commands)\b"
        assert not re.search(imports, path.read_text(), flags=re.M), path.name
