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


PROTO = SCHEMAS.parent / "proto" / "capflow" / "v1"


def test_protobuf_payloads_are_copies_of_the_proto_files() -> None:
    messages = _doc()["components"]["messages"]
    for name, path in (
        ("DistributionSnapshot", PROTO / "snapshot.proto"),
        ("CapitalFlowSeries", PROTO / "capital_flow.proto"),
    ):
        assert messages[name]["payload"].strip() == path.read_text().strip(), name


def test_the_capital_flow_topic_and_its_example() -> None:
    from google.protobuf import json_format

    from streams.domain.capital_flow import capital_flow_from_proto
    from streams.pb.capflow.v1.capital_flow_pb2 import CapitalFlowSeries

    doc = _doc()
    channel = doc["channels"]["capflow.capitalflow.v1"]
    assert channel["subscribe"]["message"]["$ref"].endswith("/CapitalFlowSeries")
    (example,) = doc["components"]["messages"]["CapitalFlowSeries"]["examples"]
    series = capital_flow_from_proto(json_format.ParseDict(example["payload"], CapitalFlowSeries()))
    assert series.partial_row is series.rows[-1] and series.rows[0].in_flow == 0.0
    for row in series.rows:  # the example's inFlow is the sum of its classes
        assert row.in_flow == round(row.large_net + row.mid_in_flow + row.sml_in_flow, 2)


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
