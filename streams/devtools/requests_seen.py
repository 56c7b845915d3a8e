"""What a simulated OpenD was asked: every capital distribution request, by whom, when."""

from __future__ import annotations

import re
import time
from typing import Any

from streams.domain.market import from_wire
from streams.opend_sim.server import OpenDSimulator


class RequestLog:
    """Every capital distribution request a simulator answered or refused: the monotonic
    time, the pid of the worker that sent it (from its client id; -1 for another client)
    and the security. Tests and benchmarks check budgets and ownership with it."""

    def __init__(self, sim: OpenDSimulator) -> None:
        self.requests: list[tuple[float, int, str]] = []
        self.refused = 0
        original = sim._capital_distribution

        def recording(conn: Any, request: Any, s2c: Any) -> None:
            match = re.match(r"capflow-(\d+)-", conn.client_id)
            pid = int(match.group(1)) if match else -1
            sec = request.c2s.security
            self.requests.append((time.monotonic(), pid, from_wire(sec.market, sec.code)))
            try:
                original(conn, request, s2c)
            except Exception:
                self.refused += 1
                raise

        sim._capital_distribution = recording  # type: ignore[method-assign]

    @property
    def times(self) -> list[float]:
        return [t for t, _, _ in self.requests]

    def pids(self, since: float = 0.0) -> set[int]:
        return {pid for t, pid, _ in self.requests if t >= since}

    def codes(self, since: float = 0.0) -> set[str]:
        return {code for t, _, code in self.requests if t >= since}

    def by(self, pid: int, since: float = 0.0) -> list[float]:
        """Times of the requests ``pid`` sent from ``since`` on."""
        return [t for t, p, _ in self.requests if p == pid and t >= since]

    def first_by(self, pid: int, after: float) -> float | None:
        """When ``pid`` first asked after ``after`` (a takeover, say); None if it has not."""
        return next((t for t, p, _ in self.requests if p == pid and t > after), None)

    def max_in_window(self, window: float) -> int:
        """The most requests any interval of ``window`` seconds holds."""
        times = self.times
        best = j = 0
        for i, t in enumerate(times):
            while t - times[j] >= window:
                j += 1
            best = max(best, i - j + 1)
        return best

    def owner_runs(self, since: float = 0.0) -> list[int]:
        """The pids in request order with repeats folded: one entry per period of ownership."""
        runs: list[int] = []
        for t, pid, _ in self.requests:
            if t >= since and (not runs or runs[-1] != pid):
                runs.append(pid)
        return runs
