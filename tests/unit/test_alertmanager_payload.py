"""The Alertmanager v2 ``postableAlert`` built from one capflow alert, on time or late."""

from __future__ import annotations

import re

import pytest

from streams.processing.events import rfc3339
from streams.sinks.alertmanager import (
    ALERTNAME,
    DEFAULT_LATE_ACTIVE,
    AlertmanagerSink,
    api_url,
    postable_alert,
)
from tests.unit.test_console_sink import make_alert

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
EVENT_TS = 1795570800.0  # make_alert's event time, 2026-11-25T01:40:00Z
ON_TIME = EVENT_TS + 2.5  # delivered a moment after the event


def test_labels_annotations_and_times() -> None:
    alert = postable_alert(make_alert(), cooldown=600.0, now=ON_TIME)
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
    assert "-12,345,678 HKD" in notes["description"]
    assert "\u00b14,200,000 HKD" in notes["description"]
    assert notes["currency"] == "HKD" and notes["event_time"] == "2026-11-25T01:40:00Z"
    assert "late" not in notes and "[late]" not in notes["summary"]
    assert alert["startsAt"] == "2026-11-25T01:40:00Z"  # the event time
    assert alert["endsAt"] == "2026-11-25T01:50:00Z"  # + cooldown: resolves by itself
    assert alert["generatorURL"] == "http://127.0.0.1:6066/flow/HK.00700/"
    assert all(LABEL_NAME.match(name) for name in [*alert["labels"], *notes])
    assert all(isinstance(v, str) for v in [*alert["labels"].values(), *notes.values()])


def test_generator_url_template_and_api_path() -> None:
    alert = postable_alert(
        make_alert(), 60.0, "https://grafana.example/d/flow?var-sec={security}", now=ON_TIME
    )
    assert alert["generatorURL"] == "https://grafana.example/d/flow?var-sec=HK.00700"
    assert api_url("http://am:9093") == "http://am:9093/api/v2/alerts"
    assert api_url("http://am:9093/") == "http://am:9093/api/v2/alerts"
    assert api_url("http://am:9093/api/v2/alerts") == "http://am:9093/api/v2/alerts"


def test_alert_without_usable_event_time_is_refused() -> None:
    event = make_alert()
    del event["data"]["event_ts"]
    with pytest.raises(ValueError, match="event_ts"):
        postable_alert(event, 600.0, now=ON_TIME)
    for ts in (1e20, -5.0, 0, "1795570800", True):
        with pytest.raises(ValueError, match="event_ts"):
            postable_alert(make_alert(event_ts=ts), 600.0, now=ON_TIME)


def test_sink_checks_its_settings() -> None:
    with pytest.raises(ValueError, match="cooldown"):
        AlertmanagerSink("http://127.0.0.1:9093", 0.0)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="late_active"):
            AlertmanagerSink("http://127.0.0.1:9093", 600.0, late_active=bad)
    with pytest.raises(KeyError):
        AlertmanagerSink("http://127.0.0.1:9093", 600.0, "http://x/{unknown}")
    sink = AlertmanagerSink("http://user:pw@127.0.0.1:9093/prefix", 600.0)
    assert sink.target == "http://127.0.0.1:9093"


def test_an_alert_delivered_after_its_cooldown_fires_as_late() -> None:
    now = EVENT_TS + 7200.0  # two hours later: a backlog after the follower was down
    alert = postable_alert(make_alert(), cooldown=600.0, now=now, late_active=900.0)
    assert alert["startsAt"] == "2026-11-25T01:40:00Z"  # still when it happened
    assert alert["endsAt"] == rfc3339(now + 900.0)  # active from its delivery
    notes = alert["annotations"]
    assert notes["late"] == "true"
    assert notes["event_time"] == "2026-11-25T01:40:00Z"
    assert notes["delivered_at"] == rfc3339(now)
    assert notes["delivered_after"] == "7200s"
    assert notes["summary"].endswith("[late]")
    assert (
        "Delivered late, 2.0 h after the event at 2026-11-25 09:40:00 HKT" in (notes["description"])
    )
    assert alert["labels"] == postable_alert(make_alert(), 600.0, now=ON_TIME)["labels"]
    assert all(LABEL_NAME.match(name) for name in notes)


@pytest.mark.parametrize(
    ("delay", "late"),
    [(599.0, False), (600.0, True), (601.0, True)],
)
def test_late_means_the_cooldown_had_passed_at_delivery(delay: float, late: bool) -> None:
    alert = postable_alert(make_alert(), cooldown=600.0, now=EVENT_TS + delay)
    assert ("late" in alert["annotations"]) is late
    expected_end = EVENT_TS + delay + DEFAULT_LATE_ACTIVE if late else EVENT_TS + 600.0
    assert alert["endsAt"] == rfc3339(expected_end)
