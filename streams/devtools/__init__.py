"""Development harness shared by tests/ and bench/: topics, worker processes, readers, metrics,
the official SDK and the simulator in subprocesses.

Nothing in the product imports this package; it exists so the integration tests and
the benchmarks drive a worker, read topics and scrape metrics the same way.
"""

from __future__ import annotations

from streams.broker.local import free_port
from streams.devtools.alerts import alerts_of
from streams.devtools.reading import end_offsets, read_to_end, read_topic
from streams.devtools.scrape import metric, metric_value, scrape
from streams.devtools.sdk import SdkFailed, SdkMissing, run_sdk, sim_process
from streams.devtools.topics import Topics
from streams.devtools.workers import Worker, start_worker, tail, wait_log, workers_stopped

__all__ = [
    "SdkFailed",
    "SdkMissing",
    "Topics",
    "Worker",
    "alerts_of",
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
    "tail",
    "wait_log",
    "workers_stopped",
]
