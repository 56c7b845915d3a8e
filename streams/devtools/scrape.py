"""Reading a worker's Prometheus endpoint (``/metrics/``)."""

from __future__ import annotations

import urllib.request

from streams.observability.metrics import sample_sum

metric_value = sample_sum  # sum of the samples of a name whose labels contain a string


def scrape(web_port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> str:
    """The exposition text of the worker listening on ``web_port``; OSError if unreachable."""
    with urllib.request.urlopen(f"http://{host}:{web_port}/metrics/", timeout=timeout) as resp:
        return str(resp.read().decode())


def metric(web_port: int, name: str, label: str = "") -> float:
    """Sum of a sample from a running worker, 0 while it is absent or the worker unreachable."""
    try:
        return sample_sum(scrape(web_port, timeout=2.0), name, label)
    except OSError:
        return 0.0
