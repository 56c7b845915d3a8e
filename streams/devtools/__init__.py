"""Development harness shared by tests/ and bench/: processes, topics, workers, readers,
metrics, what a simulator was asked, the official SDK and the simulator in subprocesses.

The product imports only its process launcher (``capflow demo`` starts its children
with it); the rest exists so the integration tests and the benchmarks drive a
worker, read topics and scrape metrics the same way.
"""

from __future__ import annotations

from streams.broker.local import free_port
from streams.devtools.alerts import alerts_of
from streams.devtools.processes import Child, capflow, stop_all, stopped
from streams.devtools.reading import end_offsets, read_to_end, read_topic
from streams.devtools.requests_seen import RequestLog
from streams.devtools.scrape import metric, metric_value, scrape
from streams.devtools.sdk import SdkFailed, SdkMissing, run_sdk, sim_process
from streams.devtools.topics import Topics
from streams.devtools.workers import Worker, start_worker, workers_stopped

__all__ = [
    "Child",
    "RequestLog",
    "SdkFailed",
    "SdkMissing",
    "Topics",
    "Worker",
    "alerts_of",
    "capflow",
    "end_offsets",
    "free_port",
    "metric",
    "metric_value",
    "read_to_end",
    "read_topic",
    "run_sdk",
    "scrape",
    "sim_process",
    "start_worker",
    "stop_all",
    "stopped",
    "workers_stopped",
]
