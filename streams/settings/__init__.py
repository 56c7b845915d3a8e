"""Every setting of every command, each declared once, in typed frozen settings per concern.

A line ``name: type = setting(default, help, parser)`` in one of the types below is
the whole of a setting: the flag ``--prefix-name``, the variable ``CAPFLOW_<PREFIX_NAME>``,
the default, the help of ``capflow --help`` and of each command that offers it, and
the parsed, validated value (``streams.settings.declare``). Commands add the types
they use as flags and build them once (``streams.settings.flags``); nothing below
``streams.commands`` sees the command line or the environment, only these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from streams.broker.local import DEFAULT_PORT
from streams.broker.resolve import DEFAULT_CACHE_DIR, DEFAULT_KAFKA_VERSION
from streams.processing.thresholds import ThresholdConfig
from streams.settings.declare import (
    Settings,
    boolean,
    choice,
    csv,
    integer,
    number,
    positive_int,
    positive_number,
    setting,
)

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# Defaults the sinks take from here, so reading settings does not load the HTTP stack.
CHAT_FORMATS = ("slack", "discord", "telegram")
WEBHOOK_FORMATS = ("cloudevents", *CHAT_FORMATS)
DEFAULT_GENERATOR_URL = "http://127.0.0.1:6066/flow/{security}/"


@dataclass(frozen=True)
class KafkaSettings(Settings):
    """How to reach the cluster: bootstrap, SASL/SSL and how long to wait for it."""

    prefix = "kafka_"
    title = "Kafka: the cluster (every command that talks to Kafka)"

    bootstrap: str = setting(f"127.0.0.1:{DEFAULT_PORT}", "Kafka bootstrap servers")
    security_protocol: str = setting(
        "PLAINTEXT",
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
        choice(*SECURITY_PROTOCOLS, upper=True),
    )
    sasl_mechanism: str = setting("", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    sasl_username: str = setting("", "SASL user name")
    sasl_password: str = setting("", "SASL password", secret=True)
    ssl_cafile: str = setting("", "CA bundle for SSL")
    connect_timeout: float = setting(
        30.0, "seconds to wait for a Kafka broker to answer before giving up", positive_number
    )

    @property
    def brokers(self) -> list[str]:
        """The bootstrap servers one by one, as Faust's ``kafka://`` URLs."""
        return [f"kafka://{b.strip()}" for b in self.bootstrap.split(",")]

    @cached_property
    def client_kwargs(self) -> dict[str, Any]:
        """aiokafka connection kwargs, SASL/SSL included; the SSL context is made once.

        Every client of a process shares this dict: do not change it, copy it.
        """
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap}
        protocol = self.security_protocol
        if protocol != "PLAINTEXT":
            kwargs["security_protocol"] = protocol
        if "SSL" in protocol:
            import ssl

            from aiokafka.helpers import create_ssl_context

            ctx: ssl.SSLContext = create_ssl_context(cafile=self.ssl_cafile or None)
            kwargs["ssl_context"] = ctx
        if protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs


@dataclass(frozen=True)
class TopicSettings(Settings):
    """The pipeline topics and how many partitions capflow creates them with (all alike:
    snapshots and capital-flow series of a security meet in one partition number)."""

    prefix = "topic_"
    title = "topics"

    distribution: str = setting("capflow.distribution.v1", "snapshot topic")
    flow: str = setting("capflow.flow.v1", "rolling flow topic")
    alerts: str = setting("capflow.alerts.v1", "reversal alert topic")
    deadletter: str = setting("capflow.deadletter.v1", "dead-letter topic")
    capitalflow: str = setting(
        "capflow.capitalflow.v1", "capital-flow (minute history, OpenD 3211) topic"
    )
    partitions: int = setting(3, "partitions for topics capflow creates", positive_int)

    def all(self) -> list[str]:
        return [self.distribution, self.flow, self.alerts, self.deadletter, self.capitalflow]


@dataclass(frozen=True)
class OpenDSettings(Settings):
    """The OpenD gateway(s) and how to talk to each: the same timeout and key for all."""

    prefix = "opend_"
    title = "OpenD"

    host: str = setting("127.0.0.1", "OpenD host")
    port: int = setting(11111, "OpenD port", integer)
    timeout: float = setting(10.0, "seconds to wait for one OpenD reply", number)
    rsa_key: str = setting(
        "",
        "RSA private key file (PEM) shared with OpenD: encrypts InitConnect with RSA and "
        "every later packet with AES, as OpenD does when configured with a key; empty: none",
    )
    gateways: str = setting(
        "",
        "several OpenD gateways, host:port[=label],... (one account each, one budget each); "
        "empty: the one of --opend-host/--opend-port",
        name="opend",
    )


@dataclass(frozen=True)
class PollerSettings(Settings):
    """What to poll, within which budget, and in which order."""

    title = "poller"

    watchlist: tuple[str, ...] = setting(
        (),
        "comma-separated securities, e.g. HK.00700,US.AAPL; with --watchlist-file and "
        "--watchlist-group, polled are all of them (their union)",
        csv,
    )
    watchlist_file: str = setting(
        "",
        "file of securities, one code per line (# comments, blank lines ignored), re-read "
        "every --watchlist-refresh seconds; every worker must read the same file",
    )
    watchlist_group: str = setting(
        "",
        "a watchlist group of the Futu/moomoo app (OpenD Qot_GetUserSecurity, asked of the "
        "first --opend gateway), re-read every --watchlist-refresh seconds",
    )
    watchlist_refresh: float = setting(
        60.0,
        "seconds between re-reads of --watchlist-file and --watchlist-group (at the same "
        "wall-clock instants on every worker); securities added or removed take effect then",
        positive_number,
    )
    rate_limit_requests: int = setting(30, "OpenD requests allowed per window", positive_int)
    rate_limit_window: float = setting(30.0, "rate limit window in seconds", positive_number)
    flow_rate_limit_requests: int = setting(
        30,
        "capital-flow (3211) requests allowed per window, separate from capital distribution's",
        positive_int,
    )
    flow_rate_limit_window: float = setting(
        30.0, "capital-flow (3211) rate limit window in seconds", positive_number
    )
    minute_history: bool = setting(
        True,
        "fetch minute history (OpenD capital flow, 3211) where the flow processor lacks a "
        "baseline (a start after the open, a hole in polling) and before polls far apart",
        boolean,
    )
    ignore_market_hours: bool = setting(
        False, "poll even when a market is closed (simulator)", boolean
    )
    leader_grace: bool = setting(
        True, "a gateway's new owner waits one rate-limit window before its first request", boolean
    )
    schedule: str = setting(
        "adaptive",
        "which security each request goes to: adaptive (where a poll advances a reversal "
        "alert, every security still within --max-staleness) or round-robin",
        choice("round-robin", "adaptive"),
    )
    max_staleness: float = setting(
        600.0,
        "adaptive schedule: poll every security at least every this many seconds",
        positive_number,
    )
    gateway_topic: str = setting(
        "", "control topic, one partition per gateway (empty: <app-id>.gateways)"
    )
    gateway_down_after: float = setting(
        10.0,
        "seconds of refused connections before a gateway's securities move to the others",
        positive_number,
    )


@dataclass(frozen=True)
class FlowSettings(Settings):
    """The definitions' parameters (window, thresholds, confirm, cooldown) and their file."""

    title = "flow and detector"

    window: float = setting(300.0, "rolling window W in seconds of event time", positive_number)
    theta_abs: float = setting(0.0, "absolute threshold on R_W", number)
    theta_rel: float = setting(0.10, "threshold relative to turnover change in W", number)
    confirm: int = setting(2, "snapshots the new side must hold before alerting", positive_int)
    cooldown: float = setting(600.0, "seconds of event time between alerts per security", number)
    thresholds_file: str = setting(
        "",
        "JSON file with per-market / per-security overrides of theta_abs, theta_rel, "
        "confirm, cooldown",
    )

    def params(self) -> dict[str, Any]:
        """The command-line defaults of every security, before the thresholds file."""
        return {
            "window": self.window,
            "theta_abs": self.theta_abs,
            "theta_rel": self.theta_rel,
            "confirm": self.confirm,
            "cooldown": self.cooldown,
        }

    def thresholds(self) -> ThresholdConfig:
        """These values as every security's defaults, the thresholds file on top."""
        return ThresholdConfig.layered(self.params(), self.thresholds_file)


@dataclass(frozen=True)
class WorkerSettings(Settings):
    """The Faust application: id (consumer group), store, web port, timeouts, polling."""

    title = "worker"

    app_id: str = setting("capflow", "Faust application id (consumer group)")
    store: str = setting("memory://", "Faust table store: memory:// or rocksdb://")
    data_dir: str = setting(".capflow", "directory for local state, logs and broker data")
    web_port: int = setting(6066, "Faust web / metrics port", integer)
    session_timeout: float = setting(
        30.0,
        "seconds before the group gives a silent worker's partitions (and leadership) away",
        number,
    )
    shutdown_timeout: float = setting(
        15.0, "seconds a stopping worker waits for Kafka before it exits anyway", positive_number
    )
    stall_timeout: float = setting(
        60.0,
        "seconds a snapshot partition this worker owns may have lag without a processed "
        "record before it counts as stalled",
        positive_number,
    )
    stall_action: str = setting(
        "exit",
        "on a stalled partition: exit (status 1, for the supervisor to restart the worker) "
        "or log (count it and go on)",
        choice("exit", "log"),
    )
    poller: bool = setting(
        True, "poll the OpenD gateways this worker is given; --no-poller: process only", boolean
    )


@dataclass(frozen=True)
class SinkSettings(Settings):
    """Where ``capflow alerts`` delivers alerts, and how long it keeps trying."""

    title = "alert sinks (capflow alerts)"

    topic_undelivered: str = setting(
        "capflow.alerts.undelivered.v1",
        "topic for alerts a sink could not deliver (with headers saying why)",
    )
    give_up_after: float = setting(
        3600.0,
        "seconds after an alert was published before a failing sink gives it up "
        "to the undelivered topic",
        positive_number,
    )
    webhook_url: str = setting("", "POST each alert to this URL", flag="--webhook")
    webhook_secret: str = setting(
        "", "HMAC secret of X-Capflow-Signature, needed by --format cloudevents", secret=True
    )
    webhook_format: str = setting(
        "cloudevents",
        "webhook body: cloudevents (signed), slack, discord or telegram",
        choice(*WEBHOOK_FORMATS),
        flag="--format",
    )
    telegram_chat_id: str = setting(
        "",
        "chat id (number or @channel) for --format telegram; the --webhook URL is "
        "https://api.telegram.org/bot<TOKEN>/sendMessage",
    )
    alertmanager_url: tuple[str, ...] = setting(
        (),
        "Alertmanager base URL(s), e.g. http://127.0.0.1:9093, comma-separated or the flag "
        "repeated; alerts resolve after --cooldown, late ones --late-alert-active after "
        "delivery",
        csv,
        flag="--alertmanager",
        repeatable=True,
    )
    generator_url: str = setting(
        DEFAULT_GENERATOR_URL,
        "generatorURL of Alertmanager alerts; {security} and {id} are filled in",
    )
    sink_timeout: float = setting(10.0, "seconds one delivery attempt may take", positive_number)
    late_alert_active: float = setting(
        900.0,
        "seconds an alert delivered to Alertmanager after its cooldown had passed stays "
        "active from its delivery (marked late)",
        positive_number,
    )


@dataclass(frozen=True)
class LocalKafkaSettings(Settings):
    """The local single-node broker of ``capflow kafka`` and ``capflow demo``."""

    prefix = "kafka_"
    title = "local broker (capflow kafka, capflow demo)"

    port: int = setting(
        DEFAULT_PORT,
        "local broker port on 127.0.0.1; the controller uses port+1",
        integer,
        flag="--port",
    )
    version: str = setting(
        DEFAULT_KAFKA_VERSION, "org.apache.kafka:kafka_2.13 version fetched from Maven"
    )
    cache_dir: str = setting(DEFAULT_CACHE_DIR, "where broker jars are cached", name="cache_dir")


@dataclass(frozen=True)
class PipelineSettings(Settings):
    """Everything ``capflow worker`` runs with, one value per concern."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    opend: OpenDSettings = field(default_factory=OpenDSettings)
    poller: PollerSettings = field(default_factory=PollerSettings)
    flow: FlowSettings = field(default_factory=FlowSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)

    @property
    def control_topic(self) -> str:
        """One partition per gateway; its assignment in the gateway group is ownership."""
        return self.poller.gateway_topic or f"{self.worker.app_id}.gateways"

    @property
    def gateway_group(self) -> str:
        """The consumer group whose assignment of the control topic decides ownership."""
        return f"{self.worker.app_id}.gateways"


# Every settings type whose settings ``capflow --help`` lists, in that order.
DECLARED: tuple[type[Settings], ...] = (
    KafkaSettings,
    TopicSettings,
    OpenDSettings,
    PollerSettings,
    FlowSettings,
    WorkerSettings,
    SinkSettings,
    LocalKafkaSettings,
)

__all__ = [
    "DECLARED",
    "FlowSettings",
    "KafkaSettings",
    "LocalKafkaSettings",
    "OpenDSettings",
    "PipelineSettings",
    "PollerSettings",
    "Settings",
    "SinkSettings",
    "TopicSettings",
    "WorkerSettings",
]
