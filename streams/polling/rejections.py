"""Securities OpenD refused, retried later with backoff instead of dropped for good.

One reply is never final: a security OpenD calls unknown may be listed tomorrow, a
missing quote right may be bought, an error may be transient. The tracker keeps,
per security, why it was refused, how often in a row, and when it may be asked
again: rejections (unknown, unsupported, no quote right) wait minutes, then hours;
an unrecognised error is retried at once a couple of times and then backed off too,
so a failing security is not hammered. A reply with data clears the entry.

Pure logic on an injected clock value, so it is unit-tested without sleeping. The
poller asks :meth:`RejectionTracker.blocked`; metrics and the worker's status view
read :meth:`RejectionTracker.entries`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Kinds of refusal (metric label values).
UNKNOWN = "unknown_security"
UNSUPPORTED = "unsupported"
NO_QUOTE_RIGHT = "no_quote_right"
ERROR = "error"

# Waits after the 1st, 2nd, ... rejection in a row: minutes, then hours (last repeats).
REJECTION_BACKOFF: tuple[float, ...] = (60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)
# Waits once an unrecognised error has repeated ERROR_TOLERANCE times in a row.
ERROR_BACKOFF: tuple[float, ...] = (30.0, 60.0, 120.0, 300.0, 900.0, 1800.0)
ERROR_TOLERANCE = 2


@dataclass(frozen=True)
class Rejection:
    """The state of one refused security."""

    security: str
    kind: str
    reason: str
    count: int  # refusals in a row
    since: float  # first refusal of this streak (epoch s)
    retry_at: float  # not asked again before this (epoch s)

    def as_dict(self, now: float) -> dict[str, object]:
        """For the status view (JSON)."""
        return {
            "security": self.security,
            "kind": self.kind,
            "reason": self.reason,
            "count": self.count,
            "since": self.since,
            "retry_at": self.retry_at,
            "retry_in_s": max(0.0, self.retry_at - now),
        }


def _wait(schedule: Sequence[float], n: int) -> float:
    """The n-th (1-based) wait of a schedule; the last one repeats."""
    return schedule[min(n, len(schedule)) - 1]


class RejectionTracker:
    """Per security: refusals in a row and when to ask again."""

    def __init__(
        self,
        rejection_backoff: Sequence[float] = REJECTION_BACKOFF,
        error_backoff: Sequence[float] = ERROR_BACKOFF,
        error_tolerance: int = ERROR_TOLERANCE,
    ) -> None:
        if not rejection_backoff or not error_backoff:
            raise ValueError("backoff schedules must not be empty")
        if any(w <= 0 for w in (*rejection_backoff, *error_backoff)):
            raise ValueError("backoff waits must be > 0")
        if error_tolerance < 0:
            raise ValueError("error_tolerance must be >= 0")
        self.rejection_backoff = tuple(rejection_backoff)
        self.error_backoff = tuple(error_backoff)
        self.error_tolerance = error_tolerance
        self._entries: dict[str, Rejection] = {}

    def reject(self, security: str, kind: str, reason: str, now: float) -> Rejection:
        """OpenD refused the security (unknown, unsupported, no quote right): back off."""
        return self._record(security, kind, reason, now, self.rejection_backoff, 0)

    def error(self, security: str, reason: str, now: float) -> Rejection:
        """An unrecognised error for the security: retried at once a few times, then backed off."""
        return self._record(security, ERROR, reason, now, self.error_backoff, self.error_tolerance)

    def _record(
        self,
        security: str,
        kind: str,
        reason: str,
        now: float,
        schedule: Sequence[float],
        tolerance: int,
    ) -> Rejection:
        prev = self._entries.get(security)
        # A streak counts refusals of one kind; a different kind starts a new one.
        same = prev is not None and prev.kind == kind
        count = prev.count + 1 if same and prev is not None else 1
        since = prev.since if same and prev is not None else now
        over = count - tolerance
        retry_at = now + _wait(schedule, over) if over > 0 else now
        entry = Rejection(security, kind, reason, count, since, retry_at)
        self._entries[security] = entry
        return entry

    def success(self, security: str) -> None:
        """A reply with data: the security is in good standing again."""
        self._entries.pop(security, None)

    def forget(self, security: str) -> None:
        """The security left the watchlist: nothing of it is kept."""
        self._entries.pop(security, None)

    def blocked(self, security: str, now: float) -> bool:
        """Whether the security must not be asked at ``now``."""
        entry = self._entries.get(security)
        return entry is not None and now < entry.retry_at

    def next_retry(self) -> float | None:
        """The earliest time a blocked security may be asked again (None if none is)."""
        return min((e.retry_at for e in self._entries.values()), default=None)

    def get(self, security: str) -> Rejection | None:
        return self._entries.get(security)

    def entries(self) -> list[Rejection]:
        """Every security with a refusal streak, in name order."""
        return [self._entries[s] for s in sorted(self._entries)]

    def __contains__(self, security: object) -> bool:
        return security in self._entries
