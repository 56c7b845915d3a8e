"""Prometheus metrics of a worker: budget, staleness, throughput, alerts, dead letters, lag.

Counters are process-wide (one registry per worker process). Values that are a
function of "now" (staleness, budget in use, lag) are computed at scrape time by
``StateCollector`` so they never go stale themselves.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.polling.health import CAUSES, STATES

if TYPE_CHECKING:
    from streams.polling.rejections import Rejection

REGISTRY = CollectorRegistry(auto_describe=True)

OPEND_REQUESTS = Counter(
    "capflow_opend_requests",
    "OpenD requests by protocol (3212 capital distribution, 3211 capital flow) and outcome "
    "(ok, rate_limited, rejected, error, invalid, unexpected)",
    ["protocol", "outcome"],
    registry=REGISTRY,
)
OPEND_PUSHES = Counter(
    "capflow_opend_pushes",
    "frames OpenD pushed unasked (Notify 1003, Qot/Trd pushes), by protoID",
    ["proto_id"],
    registry=REGISTRY,
)
SNAPSHOTS_PROCESSED = Counter(
    "capflow_snapshots_processed",
    "snapshots read by the flow processor, by result (flow, duplicate, stale, waiting: "
    "held for the capital-flow series it names)",
    ["result"],
    registry=REGISTRY,
)
CAPITAL_FLOW_RECORDS = Counter(
    "capflow_capital_flow_records",
    "capital-flow (minute history) records read by the flow processor, by result "
    "(accepted, dead_letter)",
    ["result"],
    registry=REGISTRY,
)
for _result in ("accepted", "dead_letter"):
    CAPITAL_FLOW_RECORDS.labels(_result)
for _result in ("flow", "duplicate", "stale", "waiting"):  # exported at 0 before the first one
    SNAPSHOTS_PROCESSED.labels(_result)
ALERTS = Counter("capflow_alerts", "reversal alerts published", ["direction"], registry=REGISTRY)
DEAD_LETTERS = Counter(
    "capflow_deadletters", "records sent to the dead-letter topic", ["stage"], registry=REGISTRY
)
PARTITION_STALLS = Counter(
    "capflow_partition_stalls",
    "snapshot partitions found stalled: lag and no record processed for --stall-timeout s",
    ["partition"],
    registry=REGISTRY,
)

WATCHLIST_SECURITIES = Gauge(
    "capflow_watchlist_securities",
    "securities in the live watchlist (--watchlist, --watchlist-file, --watchlist-group)",
    registry=REGISTRY,
)
WATCHLIST_CHANGES = Counter(
    "capflow_watchlist_changes",
    "securities added to or removed from the live watchlist by a re-read, by change",
    ["change"],
    registry=REGISTRY,
)
WATCHLIST_READ_FAILURES = Counter(
    "capflow_watchlist_read_failures",
    "re-reads of a watchlist source that failed (its last good list stays), by source",
    ["source"],
    registry=REGISTRY,
)
for _change in ("added", "removed"):  # exported at 0 before the first change
    WATCHLIST_CHANGES.labels(_change)
for _source in ("file", "group"):
    WATCHLIST_READ_FAILURES.labels(_source)


class StateCollector(Collector):
    """Gauges read from live objects at scrape time."""

    def __init__(self) -> None:
        self.budget: Callable[[], tuple[int, int]] | None = None  # (used, limit)
        self.last_received: Callable[[], dict[str, float]] | None = None
        self.lag: Callable[[], dict[str, int]] | None = None  # "topic/partition" -> records
        self.rejections: Callable[[], list[Rejection]] | None = None  # backed-off securities
        self.markets: Callable[[], dict[str, dict[str, object]]] | None = None  # market state
        # One dict per gateway, as ``GatewayPoller.describe`` gives it.
        self.gateways: Callable[[], list[dict[str, Any]]] | None = None
        # Minute levels (capital-flow history) held by the states this worker processed.
        self.minute_levels: Callable[[], int] | None = None
        self.clock: Callable[[], float] = time.time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.budget is not None:
            used, limit = self.budget()
            g = GaugeMetricFamily(
                "capflow_opend_budget",
                "OpenD requests in the current window vs the limit",
                labels=["kind"],
            )
            g.add_metric(["used"], used)
            g.add_metric(["limit"], limit)
            yield g
        if self.last_received is not None:
            now = self.clock()
            g = GaugeMetricFamily(
                "capflow_snapshot_staleness_seconds",
                "seconds since the last snapshot of each security was received",
                labels=["security"],
            )
            for security, ts in sorted(self.last_received().items()):
                g.add_metric([security], max(0.0, now - ts))
            yield g
        if self.lag is not None:
            g = GaugeMetricFamily(
                "capflow_consumer_lag",
                "records behind the end of each assigned partition",
                labels=["partition"],
            )
            for tp, lag in sorted(self.lag().items()):
                g.add_metric([tp], lag)
            yield g
        if self.rejections is not None:
            now = self.clock()
            entries = self.rejections()
            count = GaugeMetricFamily(
                "capflow_security_rejected",
                "securities OpenD refused and that are backed off: refusals in a row, by kind",
                labels=["security", "kind"],
            )
            retry = GaugeMetricFamily(
                "capflow_security_retry_seconds",
                "seconds until a refused security is asked again",
                labels=["security", "kind"],
            )
            for entry in entries:
                count.add_metric([entry.security, entry.kind], entry.count)
                retry.add_metric([entry.security, entry.kind], max(0.0, entry.retry_at - now))
            yield count
            yield retry
        if self.markets is not None:
            g = GaugeMetricFamily(
                "capflow_market_open",
                "1 while a market is in regular trading, by who said so (opend or hours)",
                labels=["market", "source"],
            )
            for market, info in sorted(self.markets().items()):
                g.add_metric([market, str(info["source"])], 1.0 if info["open"] else 0.0)
            yield g
        if self.gateways is not None:
            gateways = self.gateways()
            yield from _gateway_families(gateways)
            yield from _health_families(gateways)
        if self.minute_levels is not None:
            yield GaugeMetricFamily(
                "capflow_minute_levels",
                "minute levels of capital-flow history held by the flow states processed here",
                value=self.minute_levels(),
            )


def _gateway_families(gateways: list[dict[str, Any]]) -> Iterator[Any]:
    """Per gateway (label ``gateway``): ownership, health, budget, requests, share, staleness."""
    owned = GaugeMetricFamily(
        "capflow_gateway_owned", "1 if this worker polls the gateway now", labels=["gateway"]
    )
    up = GaugeMetricFamily(
        "capflow_gateway_up", "1 if the gateway counts as up in the spread", labels=["gateway"]
    )
    budget = GaugeMetricFamily(
        "capflow_gateway_budget",
        "requests in the current window vs the limit, per gateway",
        labels=["gateway", "kind"],
    )
    requests = CounterMetricFamily(
        "capflow_gateway_requests",
        "OpenD requests this worker sent to the gateway, by outcome",
        labels=["gateway", "outcome"],
    )
    securities = GaugeMetricFamily(
        "capflow_gateway_securities",
        "securities the spread gives the gateway",
        labels=["gateway"],
    )
    staleness = GaugeMetricFamily(
        "capflow_gateway_staleness_seconds",
        "oldest last snapshot among the gateway's securities (polled here)",
        labels=["gateway"],
    )
    history_budget = GaugeMetricFamily(
        "capflow_gateway_history_budget",
        "capital-flow (3211) requests in the current window vs its own limit, per gateway",
        labels=["gateway", "kind"],
    )
    history_requests = CounterMetricFamily(
        "capflow_gateway_history_requests",
        "capital-flow (3211) requests this worker sent to the gateway, by outcome",
        labels=["gateway", "outcome"],
    )
    waiting: set[str] = set()
    for gw in gateways:
        label = gw["gateway"]
        owned.add_metric([label], 1.0 if gw["owned"] else 0.0)
        up.add_metric([label], 1.0 if gw["up"] else 0.0)
        budget.add_metric([label, "used"], gw["budget"]["used"])
        budget.add_metric([label, "limit"], gw["budget"]["limit"])
        for outcome in ("ok", "rate_limited", "error", "rejected", "invalid"):
            requests.add_metric([label, outcome], gw["requests"][outcome])
        securities.add_metric([label], len(gw["securities"]))
        if gw["owned"] and gw["staleness_max_s"] is not None:
            staleness.add_metric([label], gw["staleness_max_s"])
        history = gw.get("capital_flow")
        if history is not None:
            history_budget.add_metric([label, "used"], history["budget"]["used"])
            history_budget.add_metric([label, "limit"], history["budget"]["limit"])
            for outcome in ("ok", "rate_limited", "error", "rejected", "invalid"):
                history_requests.add_metric([label, outcome], history["requests"][outcome])
            if gw["owned"]:
                waiting.update(history["waiting_for_history"])
    yield from (owned, up, budget, requests, securities, staleness)
    yield from (history_budget, history_requests)
    yield GaugeMetricFamily(
        "capflow_history_waiting",
        "securities whose latest flow had no baseline and that wait for minute history",
        value=len(waiting),
    )


def _health_families(gateways: list[dict[str, Any]]) -> Iterator[Any]:
    """Per gateway: up, down or sick (every worker's view), and why (its owner's counts)."""
    state = GaugeMetricFamily(
        "capflow_gateway_state",
        "1 for the gateway's state (up, down: connections fail, sick: its requests fail), "
        "0 for the others",
        labels=["gateway", "state"],
    )
    failing = GaugeMetricFamily(
        "capflow_gateway_failing_seconds",
        "seconds the gateway's quote requests have failed without a reply with data "
        "(0: not failing; owned here)",
        labels=["gateway"],
    )
    failures = CounterMetricFamily(
        "capflow_gateway_failures",
        "failures that count against the gateway's health, by cause (refused: a connection "
        "attempt; error: an error reply naming no security; timeout; dropped: the connection "
        "closed under a request); owned here",
        labels=["gateway", "cause"],
    )
    for gw in gateways:
        label = gw["gateway"]
        for name in STATES:
            state.add_metric([label, name], 1.0 if gw["state"] == name else 0.0)
        health = gw.get("health")
        if health is None:
            continue
        failing.add_metric([label], health["failing_for_s"] or 0.0)
        for cause in CAUSES:
            failures.add_metric([label, cause], health["failures"].get(cause, 0))
    yield from (state, failing, failures)


STATE = StateCollector()
REGISTRY.register(STATE)


def exposition() -> bytes:
    """The text format Prometheus scrapes."""
    return generate_latest(REGISTRY)


def sample_sum(text: str, name: str, label: str = "") -> float:
    """Sum of the samples of ``name`` (whose labels contain ``label``) in exposition text."""
    pattern = rf"^{re.escape(name)}(?:\{{[^}}]*{re.escape(label)}[^}}]*\}})? ([0-9.e+-]+)$"
    return sum(float(v) for v in re.findall(pattern, text, flags=re.M))
