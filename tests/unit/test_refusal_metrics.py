"""Refused securities and market states as Prometheus gauges, read at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from streams.observability.metrics import StateCollector, sample_sum
from streams.polling.rejections import NO_QUOTE_RIGHT, UNKNOWN, RejectionTracker

T0 = 1_700_000_000.0


def test_rejections_and_market_state_gauges() -> None:
    tracker = RejectionTracker()
    tracker.reject("HK.99999", UNKNOWN, "未知股票", T0)
    tracker.reject("HK.99999", UNKNOWN, "未知股票", T0 + 60)
    tracker.reject("US.AAPL", NO_QUOTE_RIGHT, "no quote right", T0 + 60)
    collector = StateCollector()
    collector.clock = lambda: T0 + 100
    collector.rejections = tracker.entries
    collector.markets = lambda: {
        "HK": {"open": True, "state": 3, "source": "opend"},
        "US": {"open": False, "state": None, "source": "hours"},
    }
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    rejected = 'security="HK.99999"'
    assert sample_sum(text, "capflow_security_rejected", rejected) == 2.0
    assert sample_sum(text, "capflow_security_rejected", 'kind="no_quote_right"') == 1.0
    # HK.99999's second refusal at T0+60 waits 300 s: 260 s left at T0+100.
    assert sample_sum(text, "capflow_security_retry_seconds", rejected) == 260.0
    assert sample_sum(text, "capflow_market_open", 'market="HK",source="opend"') == 1.0
    assert sample_sum(text, "capflow_market_open", 'market="US",source="hours"') == 0.0
    tracker.success("HK.99999")
    assert rejected not in generate_latest(registry).decode()
