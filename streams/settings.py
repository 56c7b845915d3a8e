"""Typed, frozen settings per concern, built once per command from the parsed ``OPTIONS``.

``streams.config`` is the one table of names, defaults, help and environment variables;
a command parses it with argparse and turns the result into these values, so nothing
below ``streams.commands`` reads an ``argparse.Namespace`` or the environment. Secrets
(the SASL password) never appear in a repr.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from streams.config import DEFAULT_BOOTSTRAP, option, parse_protocol
from streams.processing.thresholds import ThresholdConfig


def _default(name: str) -> Any:
    """The built-in default of one option (what a caller that gives nothing gets)."""
    return option(name).default


@dataclass(frozen=True)
class TopicNames:
    """The four pipeline topics and how many partitions capflow creates them with."""

    distribution: str = _default("topic_distribution")
    flow: str = _default("topic_flow")
    alerts: str = _default("topic_alerts")
    deadletter: str = _default("topic_deadletter")
    partitions: int = _default("topic_partitions")

    def all(self) -> list[str]:
        return [self.distribution, self.flow, self.alerts, self.deadletter]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TopicNames:
        return cls(
            distribution=args.topic_distribution,
            flow=args.topic_flow,
            alerts=args.topic_alerts,
            deadletter=args.topic_deadletter,
            partitions=args.topic_partitions,
        )


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach the cluster: bootstrap, SASL/SSL and how long to wait for it."""

    bootstrap: str = DEFAULT_BOOTSTRAP
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)  # never shown
    ssl_cafile: str = ""
    connect_timeout: float = _default("kafka_connect_timeout")

    def __post_init__(self) -> None:
        object.__setattr__(self, "security_protocol", parse_protocol(self.security_protocol))

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

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> KafkaSettings:
        """From a command's options; options the command does not have keep their default."""
        return cls(
            bootstrap=args.kafka_bootstrap,
            security_protocol=str(getattr(args, "kafka_security_protocol", "PLAINTEXT")),
            sasl_mechanism=getattr(args, "kafka_sasl_mechanism", "") or "",
            sasl_username=getattr(args, "kafka_sasl_username", "") or "",
            sasl_password=getattr(args, "kafka_sasl_password", "") or "",
            ssl_cafile=getattr(args, "kafka_ssl_cafile", "") or "",
            connect_timeout=getattr(
                args, "kafka_connect_timeout", _default("kafka_connect_timeout")
            ),
        )


@dataclass(frozen=True)
class OpenDSettings:
    """The OpenD gateway(s) and how to talk to each: the same timeout and key for all."""

    host: str = _default("opend_host")
    port: int = _default("opend_port")
    timeout: float = _default("opend_timeout")
    rsa_key_file: str = ""
    gateways: str = ""  # --opend: host:port[=label],...; empty: host and port above

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> OpenDSettings:
        return cls(
            host=args.opend_host,
            port=args.opend_port,
            timeout=args.opend_timeout,
            rsa_key_file=str(getattr(args, "opend_rsa_key", "") or ""),
            gateways=str(getattr(args, "opend", "") or ""),
        )


@dataclass(frozen=True)
class PollerSettings:
    """What to poll, within which budget, and in which order."""

    watchlist: tuple[str, ...] = tuple(_default("watchlist"))
    rate_limit_requests: int = _default("rate_limit_requests")
    rate_limit_window: float = _default("rate_limit_window")
    ignore_market_hours: bool = _default("ignore_market_hours")
    leader_grace: bool = _default("leader_grace")
    schedule: str = _default("schedule")
    max_staleness: float = _default("max_staleness")
    gateway_topic: str = ""
    gateway_down_after: float = _default("gateway_down_after")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PollerSettings:
        return cls(
            watchlist=tuple(args.watchlist),
            rate_limit_requests=args.rate_limit_requests,
            rate_limit_window=args.rate_limit_window,
            ignore_market_hours=args.ignore_market_hours,
            leader_grace=args.leader_grace,
            schedule=str(getattr(args, "schedule", "round-robin")),
            max_staleness=getattr(args, "max_staleness", _default("max_staleness")),
            gateway_topic=str(getattr(args, "gateway_topic", "") or ""),
            gateway_down_after=getattr(args, "gateway_down_after", _default("gateway_down_after")),
        )


@dataclass(frozen=True)
class FlowSettings:
    """The definitions' parameters (window, thresholds, confirm, cooldown) and their file."""

    window: float = _default("window")
    theta_abs: float = _default("theta_abs")
    theta_rel: float = _default("theta_rel")
    confirm: int = _default("confirm")
    cooldown: float = _default("cooldown")
    thresholds_file: str = ""

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

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FlowSettings:
        return cls(
            window=args.window,
            theta_abs=args.theta_abs,
            theta_rel=args.theta_rel,
            confirm=args.confirm,
            cooldown=args.cooldown,
            thresholds_file=str(getattr(args, "thresholds_file", "") or ""),
        )


@dataclass(frozen=True)
class WorkerSettings:
    """The Faust application: id (consumer group), store, web port, timeouts."""

    app_id: str = _default("app_id")
    store: str = _default("store")
    data_dir: str = _default("data_dir")
    web_port: int = _default("web_port")
    session_timeout: float = _default("session_timeout")
    shutdown_timeout: float = _default("shutdown_timeout")
    stall_timeout: float = _default("stall_timeout")
    stall_action: str = _default("stall_action")  # "exit" or "log"
    poller: bool = True  # False: --no-poller, process only

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WorkerSettings:
        return cls(
            app_id=args.app_id,
            store=args.store,
            data_dir=args.data_dir,
            web_port=args.web_port,
            session_timeout=args.session_timeout,
            shutdown_timeout=args.shutdown_timeout,
            stall_timeout=args.stall_timeout,
            stall_action=args.stall_action,
            poller=not getattr(args, "no_poller", False),
        )


@dataclass(frozen=True)
class WorkerConfig:
    """Everything ``capflow worker`` runs with, one value per concern."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: TopicNames = field(default_factory=TopicNames)
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

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WorkerConfig:
        return cls(
            kafka=KafkaSettings.from_args(args),
            topics=TopicNames.from_args(args),
            opend=OpenDSettings.from_args(args),
            poller=PollerSettings.from_args(args),
            flow=FlowSettings.from_args(args),
            worker=WorkerSettings.from_args(args),
        )
