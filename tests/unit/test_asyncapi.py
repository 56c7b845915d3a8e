"""schemas/asyncapi.yaml stays true: every topic is described, examples match the schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from streams.settings import TopicSettings

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text())
    return doc


def test_every_default_topic_is_a_channel() -> None:
    channels = set(_doc()["channels"])
    for topic in TopicSettings().all():
        assert topic in channels


def test_json_examples_validate_against_their_schemas() -> None:
    messages = _doc()["components"]["messages"]
    checked = 0
    for message in messages.values():
        payload = message.get("payload")
        ref = payload.get("$ref", "") if isinstance(payload, dict) else ""
        if not ref.endswith(".schema.json"):
            continue
        schema = json.loads((SCHEMAS / Path(ref).name).read_text())
        for example in message.get("examples", []):
            jsonschema.validate(example["payload"], schema)
            checked += 1
    assert checked >= 2  # the flow and the alert examples at least


def test_embedded_protos_are_the_files() -> None:
    """The protobuf payloads the document carries for tools are proto/'s files verbatim."""
    messages = _doc()["components"]["messages"]
    root = SCHEMAS.parent / "proto" / "capflow" / "v1"
    for name, path in (
        ("DistributionSnapshot", root / "snapshot.proto"),
        ("CapitalFlowSeries", root / "capital_flow.proto"),
    ):
        assert messages[name]["payload"].strip() == path.read_text().strip(), name
