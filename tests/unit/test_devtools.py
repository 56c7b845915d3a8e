"""The shared dev harness: topic flags, the strict alert decoder, metrics of a dead worker."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from streams.cli import build_parser
from streams.devtools import Topics, alerts_of, free_port, metric


def test_topic_flags_parse_back_to_the_same_names() -> None:
    topics = Topics("p")
    args = build_parser().parse_args(["alerts", *topics.args()])
    assert (args.topic_distribution, args.topic_flow, args.topic_alerts, args.topic_deadletter) == (
        "p.distribution",
        "p.flow",
        "p.alerts",
        "p.deadletter",
    )
    assert topics.all() == list(topics.names.values())


def test_alerts_of_rejects_what_a_sink_would_reject() -> None:
    good = SimpleNamespace(value=b'{"id": "a1", "data": {"security": "HK.00700"}}')
    assert alerts_of([good]) == [{"id": "a1", "data": {"security": "HK.00700"}}]
    with pytest.raises(ValueError, match="no 'id'"):
        alerts_of([SimpleNamespace(value=b'{"data": {}}')])


def test_metric_of_an_unreachable_worker_is_zero() -> None:
    assert metric(free_port(), "capflow_alerts_total") == 0.0
