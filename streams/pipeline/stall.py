"""When is a partition stalled? The watchdog's decision, on whatever clock it is given.

A partition is stalled when it has lag (records on the broker past the group's
committed offset) and no record of it has been processed for ``timeout`` seconds.
A partition without lag is idle, never stalled; a slow one that processes a record
now and then is not stalled either: each processed record starts the wait again.
When the lag is unknown (a rebalance, the table recovering, the broker not
answering), nothing is decided and the wait starts again once it is known, so a
worker held up by the broker is not blamed for it. Each stall is reported once,
until the partition processes a record or runs out of lag.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

CHECKS_PER_TIMEOUT = 4  # a stall is reported at most about a quarter timeout late
MAX_CHECK_INTERVAL = 5.0


def check_interval(timeout: float) -> float:
    """Seconds between two checks for a given stall timeout."""
    return min(timeout / CHECKS_PER_TIMEOUT, MAX_CHECK_INTERVAL)


@dataclass(frozen=True)
class Stall:
    """A partition found stalled."""

    partition: Hashable
    lag: int
    waited: float  # seconds with lag and no processed record


@dataclass(frozen=True)
class StallReport:
    """What changed at one check: partitions newly stalled, and stalled ones that moved."""

    stalled: list[Stall] = field(default_factory=list)
    resumed: list[Hashable] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.stalled or self.resumed)


@dataclass
class _Track:
    processed: int | None  # offset of the last processed record seen at the last check
    since: float | None = None  # start of the current wait with lag (None: no lag)
    stalled: bool = False


class StallWatch:
    """Follows the owned partitions from check to check."""

    def __init__(self, timeout: float) -> None:
        if not timeout > 0:
            raise ValueError(f"stall timeout must be > 0, got {timeout}")
        self.timeout = timeout
        self._tracks: dict[Hashable, _Track] = {}

    def check(
        self, now: float, lags: Mapping[Hashable, int | None], processed: Mapping[Hashable, int]
    ) -> StallReport:
        """``lags``: every partition owned now, with its lag (None: unknown);
        ``processed``: the offset of the last record processed, per partition."""
        for gone in self._tracks.keys() - lags.keys():  # revoked: no longer ours to judge
            del self._tracks[gone]
        report = StallReport()
        for tp, lag in lags.items():
            offset = processed.get(tp)
            track = self._tracks.setdefault(tp, _Track(offset))
            moved, track.processed = offset != track.processed, offset
            if lag is None:
                track.since = None
            elif moved or lag <= 0:
                if track.stalled:
                    report.resumed.append(tp)
                    track.stalled = False
                track.since = now if lag > 0 else None
            elif track.since is None:
                track.since = now
            elif now - track.since >= self.timeout and not track.stalled:
                track.stalled = True
                report.stalled.append(Stall(tp, lag, now - track.since))
        return report
