"""Reading a worker's web views: its Prometheus endpoint (``/metrics/``) and ``/status/``."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

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


def status_view(web_port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> dict[str, Any]:
    """The ``/status/`` view of the worker listening on ``web_port``; {} while unreachable."""
    try:
        with urllib.request.urlopen(f"http://{host}:{web_port}/status/", timeout=timeout) as resp:
            return dict(json.loads(resp.read()))
    except OSError:
        return {}
