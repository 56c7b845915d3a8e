"""docker-compose.yml runs what the local broker runs and wires the services like the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streams.broker.resolve import DEFAULT_KAFKA_VERSION
from streams.cli import build_parser

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def test_broker_image_matches_the_local_broker_version() -> None:
    assert _services()["kafka"]["image"] == f"apache/kafka:{DEFAULT_KAFKA_VERSION}"
    env = _services()["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, one node


def test_worker_environment_names_real_settings() -> None:
    worker = _services()["worker"]
    names = {f"CAPFLOW_{a.dest.upper()}" for a in _worker_actions()}
    assert set(worker["environment"]) <= names
    assert worker["environment"]["CAPFLOW_OPEND_HOST"] == "opend-sim"


def _worker_actions() -> list[Any]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return list(sub.choices["worker"]._actions)  # type: ignore[attr-defined]
