"""The Alertmanager v2 ``postableAlert`` built from one capflow alert."""

from __future__ import annotations

import re

import pytest

from streams.sinks.alertmanager import ALERTNAME, AlertmanagerSink, api_url, postable_alert
from tests.unit.test_console_sink import make_alert

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def test_labels_annotations_and_times() -> None:
    alert = postable_alert(make_alert(), cooldown=600.0)
    assert alert["labels"] == {
        "alertname": ALERTNAME,
        "security": "HK.00700",
        "market": "HK",
        "direction": "inflow_to_outflow",
    }
    notes = alert["annotations"]
    assert float(notes["r_w"]) == -12_345_678.0
    assert float(notes["threshold"]) == 4_200_000.0
    assert notes["alert_id"] == "0123456789abcdef0123456789abcdef"
    assert notes["summary"] == "HK.00700: large-order flow reversed (inflow \u2192 outflow)"
    assert "-12,345,678" in notes["description"] and "\u00b14,200,000" in notes["description"]
    assert alert["startsAt"] == "2026-11-25T01:40:00Z"  # the event time
    assert alert["endsAt"] == "2026-11-25T01:50:00Z"  # + cooldown: resolves by itself
    assert alert["generatorURL"] == "http://127.0.0.1:6066/flow/HK.00700/"
    assert all(LABEL_NAME.match(name) for name in [*alert["labels"], *notes])
    assert all(isinstance(v, str) for v in [*alert["labels"].values(), *notes.values()])


def test_generator_url_template_and_api_path() -> None:
    alert = postable_alert(make_alert(), 60.0, "https://grafana.example/d/flow?var-sec={security}")
    assert alert["generatorURL"] == "https://grafana.example/d/flow?var-sec=HK.00700"
    assert api_url("http://am:9093") == "http://am:9093/api/v2/alerts"
    assert api_url("http://am:9093/") == "http://am:9093/api/v2/alerts"
    assert api_url("http://am:9093/api/v2/alerts") == "http://am:9093/api/v2/alerts"


def test_alert_without_usable_event_time_is_refused() -> None:
    event = make_alert()
    del event["data"]["event_ts"]
    with pytest.raises(ValueError, match="event_ts"):
        postable_alert(event, 600.0)
    for ts in (1e20, -5.0, 0, "1795570800", True):
        with pytest.raises(ValueError, match="event_ts"):
            postable_alert(make_alert(event_ts=ts), 600.0)


def test_sink_checks_its_settings() -> None:
    with pytest.raises(ValueError, match="cooldown"):
        AlertmanagerSink("http://127.0.0.1:9093", 0.0)
    with pytest.raises(KeyError):
        AlertmanagerSink("http://127.0.0.1:9093", 600.0, "http://x/{unknown}")
    sink = AlertmanagerSink("http://user:pw@127.0.0.1:9093/prefix", 600.0)
    assert sink.target == "http://127.0.0.1:9093"
