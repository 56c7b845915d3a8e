"""Settings shared by every command: each one a CAPFLOW_* variable and a flag.

One table (``OPTIONS``) is the single source of names, defaults and help, so the
environment, the flags and ``capflow --help`` cannot drift apart.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"

T = TypeVar("T")


@dataclass(frozen=True)
class Option:
    """One setting: flag name, env variable, type, default and help text."""

    name: str  # attribute name, e.g. "kafka_bootstrap"
    default: Any
    help: str
    type: Callable[[str], Any] = str
    group: str = "general"
    secret: bool = False  # never shown: not in --help, errors or logs

    @property
    def env(self) -> str:
        return "CAPFLOW_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"must be >= 1, got {number}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError(f"must be a finite number > 0, got {value}")
    return number


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def parse_protocol(value: str) -> str:
    """A Kafka security protocol in any case, or ValueError naming the ones there are."""
    name = value.strip().upper()
    if name not in SECURITY_PROTOCOLS:
        raise ValueError(f"expected one of {', '.join(SECURITY_PROTOCOLS)}")
    return name


def _schedule(value: str) -> str:
    name = value.strip().lower()
    if name not in ("round-robin", "adaptive"):
        raise ValueError("expected round-robin or adaptive")
    return name


STALL_ACTIONS = ("exit", "log")


def _stall_action(value: str) -> str:
    name = value.strip().lower()
    if name not in STALL_ACTIONS:
        raise ValueError("expected exit or log")
    return name


def _bool(value: str) -> bool:
    """1/true/yes/on or 0/false/no/off (any case); anything else is an error, not False."""
    word = value.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected one of 1, true, yes, on, 0, false, no, off")


OPTIONS: tuple[Option, ...] = (
    # Kafka
    Option("kafka_bootstrap", DEFAULT_BOOTSTRAP, "Kafka bootstrap servers", group="kafka"),
    Option("topic_distribution", "capflow.distribution.v1", "snapshot topic", group="kafka"),
    Option("topic_flow", "capflow.flow.v1", "rolling flow topic", group="kafka"),
    Option("topic_alerts", "capflow.alerts.v1", "reversal alert topic", group="kafka"),
    Option("topic_deadletter", "capflow.deadletter.v1", "dead-letter topic", group="kafka"),
    Option(
        "topic_partitions", 3, "partitions for topics capflow creates", _positive_int, group="kafka"
    ),
    Option(
        "kafka_security_protocol",
        "PLAINTEXT",
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
        parse_protocol,
        group="kafka",
    ),
    Option("kafka_sasl_mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", group="kafka"),
    Option("kafka_sasl_username", "", "SASL user name", group="kafka"),
    Option("kafka_sasl_password", "", "SASL password", group="kafka", secret=True),
    Option("kafka_ssl_cafile", "", "CA bundle for SSL", group="kafka"),
    Option(
        "kafka_connect_timeout",
        30.0,
        "seconds to wait for a Kafka broker to answer before giving up",
        _positive_float,
        group="kafka",
    ),
    # OpenD
    Option("opend_host", "127.0.0.1", "OpenD host", group="opend"),
    Option("opend_port", 11111, "OpenD port", int, group="opend"),
    Option("opend_timeout", 10.0, "seconds to wait for one OpenD reply", float, group="opend"),
    Option(
        "opend_rsa_key",
        "",
        "RSA private key file (PEM) shared with OpenD: encrypts InitConnect with RSA and "
        "every later packet with AES, as OpenD does when configured with a key; empty: none",
        group="opend",
    ),
    Option(
        "opend",
        "",
        "several OpenD gateways, host:port[=label],... (one account each, one budget each); "
        "empty: the one of --opend-host/--opend-port",
        group="opend",
    ),
    # Poller
    Option(
        "watchlist",
        ["HK.00700"],
        "comma-separated securities, e.g. HK.00700,US.AAPL",
        _csv,
        group="poller",
    ),
    Option(
        "rate_limit_requests",
        30,
        "OpenD requests allowed per window",
        _positive_int,
        group="poller",
    ),
    Option(
        "rate_limit_window", 30.0, "rate limit window in seconds", _positive_float, group="poller"
    ),
    Option(
        "ignore_market_hours",
        False,
        "poll even when a market is closed (simulator)",
        _bool,
        group="poller",
    ),
    Option(
        "leader_grace",
        True,
        "a gateway's new owner waits one rate-limit window before its first request",
        _bool,
        group="poller",
    ),
    Option(
        "schedule",
        "adaptive",
        "which security each request goes to: adaptive (where a poll advances a reversal "
        "alert, every security still within --max-staleness) or round-robin",
        _schedule,
        group="poller",
    ),
    Option(
        "max_staleness",
        600.0,
        "adaptive schedule: poll every security at least every this many seconds",
        _positive_float,
        group="poller",
    ),
    Option(
        "gateway_topic",
        "",
        "control topic, one partition per gateway (empty: <app-id>.gateways)",
        group="poller",
    ),
    Option(
        "gateway_down_after",
        10.0,
        "seconds of refused connections before a gateway's securities move to the others",
        _positive_float,
        group="poller",
    ),
    # Flow + detector
    Option(
        "window", 300.0, "rolling window W in seconds of event time", _positive_float, group="flow"
    ),
    Option("theta_abs", 0.0, "absolute threshold on R_W", float, group="flow"),
    Option("theta_rel", 0.10, "threshold relative to turnover change in W", float, group="flow"),
    Option(
        "confirm",
        2,
        "snapshots the new side must hold before alerting",
        _positive_int,
        group="flow",
    ),
    Option(
        "cooldown", 600.0, "seconds of event time between alerts per security", float, group="flow"
    ),
    Option(
        "thresholds_file",
        "",
        "JSON file with per-market / per-security overrides of theta_abs, theta_rel, "
        "confirm, cooldown",
        group="flow",
    ),
    # Worker
    Option("app_id", "capflow", "Faust application id (consumer group)", group="worker"),
    Option("store", "memory://", "Faust table store: memory:// or rocksdb://", group="worker"),
    Option(
        "data_dir", ".capflow", "directory for local state, logs and broker data", group="worker"
    ),
    Option("web_port", 6066, "Faust web / metrics port", int, group="worker"),
    Option(
        "session_timeout",
        30.0,
        "seconds before the group gives a silent worker's partitions (and leadership) away",
        float,
        group="worker",
    ),
    Option(
        "shutdown_timeout",
        15.0,
        "seconds a stopping worker waits for Kafka before it exits anyway",
        _positive_float,
        group="worker",
    ),
    Option(
        "stall_timeout",
        60.0,
        "seconds a snapshot partition this worker owns may have lag without a processed "
        "record before it counts as stalled",
        _positive_float,
        group="worker",
    ),
    Option(
        "stall_action",
        "exit",
        "on a stalled partition: exit (status 1, for the supervisor to restart the worker) "
        "or log (count it and go on)",
        _stall_action,
        group="worker",
    ),
    # Alert sinks (capflow alerts)
    Option(
        "topic_undelivered",
        "capflow.alerts.undelivered.v1",
        "topic for alerts a sink could not deliver (with headers saying why)",
        group="sinks",
    ),
    Option(
        "give_up_after",
        3600.0,
        "seconds after an alert was published before a failing sink gives it up "
        "to the undelivered topic",
        _positive_float,
        group="sinks",
    ),
)

_BY_NAME = {opt.name: opt for opt in OPTIONS}

# Variables read by one command only (not OPTIONS: they are not shared settings),
# listed by ``capflow --help`` too: (name, help, default).
EXTRA_ENVIRONMENT: tuple[tuple[str, str, str], ...] = (
    ("CAPFLOW_WEBHOOK_URL", "capflow alerts: POST each alert to this URL", ""),
    ("CAPFLOW_WEBHOOK_SECRET", "capflow alerts: HMAC secret of X-Capflow-Signature", ""),
    ("CAPFLOW_WEBHOOK_FORMAT", "capflow alerts: cloudevents, slack, discord or telegram", ""),
    ("CAPFLOW_TELEGRAM_CHAT_ID", "capflow alerts: chat id for --format telegram", ""),
    ("CAPFLOW_ALERTMANAGER_URL", "capflow alerts: Alertmanager base URL(s), comma-separated", ""),
    ("CAPFLOW_KAFKA_PORT", "capflow kafka/demo: local broker port (controller +1)", "19092"),
    ("CAPFLOW_KAFKA_VERSION", "capflow kafka: broker version fetched from Maven", "see --help"),
    ("CAPFLOW_CACHE_DIR", "capflow kafka: where broker jars are cached", "~/.cache/capflow"),
)


def extra_env(name: str, default: T, parse: Callable[[str], T]) -> T:
    """A single command's variable from ``EXTRA_ENVIRONMENT`` (so ``--help`` lists it),
    parsed, or ``default`` when unset; a value that does not parse ends the command."""
    if name not in {env for env, _, _ in EXTRA_ENVIRONMENT}:
        raise KeyError(f"{name} is not listed in EXTRA_ENVIRONMENT")
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise SystemExit(f"capflow: {name}={raw!r} is not valid: {exc}") from exc


# Secrets of single commands (argument names), masked like the secret OPTIONS.
SECRET_ARGUMENTS: tuple[str, ...] = ("webhook_secret",)


def secret_values(args: argparse.Namespace) -> list[str]:
    """The secret settings a command was given, so logs can mask them."""
    names = [opt.name for opt in OPTIONS if opt.secret] + list(SECRET_ARGUMENTS)
    return [str(value) for name in names if (value := getattr(args, name, None))]


def option(name: str) -> Option:
    return _BY_NAME[name]


def env_default(opt: Option, environ: dict[str, str] | None = None) -> Any:
    """The default for ``opt``: its environment variable if set, else the built-in one."""
    env = os.environ if environ is None else environ
    raw = env.get(opt.env)
    if raw is None:
        return opt.default
    try:
        return opt.type(raw)
    except ValueError as exc:
        if opt.secret:  # the parser's message may quote the value
            raise SystemExit(f"capflow: {opt.env} is not valid (value hidden)") from None
        raise SystemExit(f"capflow: {opt.env}={raw!r} is not valid: {exc}") from exc


def add_options(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """Add the named settings as flags whose defaults come from CAPFLOW_* variables."""
    for name in names:
        opt = _BY_NAME[name]
        kwargs: dict[str, Any] = {
            "dest": opt.name,
            "default": env_default(opt),
            "help": f"{opt.help} (env {opt.env}, default %(default)s)",
        }
        if opt.secret:
            # The default may come from the environment: show only whether one is set.
            state = "set" if kwargs["default"] else "not set"
            kwargs["help"] = f"{opt.help} (env {opt.env}, {state}; never shown)"
            kwargs["metavar"] = "SECRET"
        if isinstance(opt.default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = opt.type
        parser.add_argument(opt.flag, **kwargs)


def group_names(*groups: str) -> list[str]:
    return [opt.name for opt in OPTIONS if opt.group in groups]


def kafka_client_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """aiokafka connection kwargs of a command's options (see ``KafkaSettings``)."""
    from streams.settings import KafkaSettings  # settings builds on this module's table

    return dict(KafkaSettings.from_args(args).client_kwargs)


def describe_environment() -> str:
    """Text for ``capflow --help``: every CAPFLOW_* variable with its default."""
    lines = ["environment (each also a flag of the commands that use it):"]
    for opt in OPTIONS:
        default = ",".join(opt.default) if isinstance(opt.default, list) else opt.default
        lines.append(f"  {opt.env:<34} {opt.help} [{default}]")
    lines.append("environment of single commands:")
    for env, help_text, default in EXTRA_ENVIRONMENT:
        lines.append(f"  {env:<34} {help_text} [{default}]")
    return "\n".join(lines)
