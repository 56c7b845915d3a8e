"""schemas/asyncapi.yaml stays true: every topic is described, examples match the schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from streams.processing.events import alert_headers
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


def test_example_headers_validate_against_their_messages() -> None:
    checked = 0
    for message in _doc()["components"]["messages"].values():
        for example in message.get("examples", []):
            if example.get("headers") and "headers" in message:
                jsonschema.validate(example["headers"], message["headers"])
                checked += 1
    assert checked >= 3  # dead letter, undelivered alert, alert


def test_alert_headers_are_documented_as_written() -> None:
    """The ``ce_*`` headers the worker writes are the ones described, in the example too."""
    message = _doc()["components"]["messages"]["ReversalAlert"]
    example = message["examples"][0]
    written = dict((name, value.decode()) for name, value in alert_headers(example["payload"]))
    assert set(written) == set(message["headers"]["properties"])
    assert set(message["headers"]["required"]) == set(written)
    assert example["headers"] == written
