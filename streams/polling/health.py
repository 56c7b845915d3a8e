"""Whether a gateway is up, down or sick, decided by its owner from what its requests see.

- **Down**: connections to the gateway fail (refused, reset, InitConnect fails) for
  ``down_after`` seconds. It is up again as soon as a connection succeeds.
- **Sick**: the gateway accepts connections but its quote requests fail (capital
  distribution or capital flow: error replies, timeouts, connections dropped mid-request)
  and no capital-distribution request has been answered with data for ``sick_after``
  seconds, while another gateway is up. A refusal that belongs to one security (unknown,
  unsupported, no quote right), a rate limit or an invalid reply is never counted: the
  callers do not report them. A capital-flow reply does not end the streak either: the
  snapshots are what the gateway is for. A sick gateway probes (one capital-distribution
  request every ``probe_every`` seconds, within its budget) and is up again at the first
  reply with data; it is also up again when no other gateway is (the last one standing
  keeps the watchlist), and then needs a whole new streak to be sick again.

Down and sick both take the gateway out of the spread, so its securities move to the up
gateways (``streams.polling.spread``). When a gateway-wide fault ends (a reply with data
after failures over several securities, or after the gateway was sick),
:meth:`GatewayHealth.answered` says how long it lasted, so the poller can clear the
per-security backoffs that the fault set (``RejectionTracker.clear_errors``).

Pure logic on an injected clock (the pool's monotonic clock; a fake one in unit tests):
the owner feeds events in and asks :meth:`GatewayHealth.check` on a timer.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.opend.errors import ConnectionLost, RequestTimeout, ServerTimeoutError

UP, DOWN, SICK = "up", "down", "sick"
STATES = (UP, DOWN, SICK)
# Why a gateway counts as failing (metric label values).
REFUSED = "refused"  # a connection attempt failed
ERROR = "error"  # an error reply that names no security
TIMEOUT = "timeout"  # no reply in time, or OpenD's own timeout
DROPPED = "dropped"  # the connection closed under a pending request
CAUSES = (REFUSED, ERROR, TIMEOUT, DROPPED)
# A streak of failures counts as gateway-wide (not one security's) from this many
# failures over at least two securities (the poller's pause after errors in a row).
WIDE_FAILURES = 3


def cause_of(exc: BaseException) -> str:
    """The cause a failed request counts under."""
    if isinstance(exc, RequestTimeout | ServerTimeoutError):
        return TIMEOUT
    if isinstance(exc, ConnectionLost | OSError):
        return DROPPED
    return ERROR


@dataclass(frozen=True)
class HealthPolicy:
    """How long failures last before a gateway's securities move, and how often a sick
    gateway is asked whether it is well again."""

    down_after: float = 10.0
    sick_after: float = 30.0
    probe_every: float = 5.0

    def __post_init__(self) -> None:
        if min(self.down_after, self.sick_after, self.probe_every) <= 0:
            raise ValueError("down_after, sick_after and probe_every must be > 0")


@dataclass(frozen=True)
class Change:
    """A state to report on the control topic, and why."""

    state: str
    reason: str


@dataclass
class _Streak:
    """Failures since the last reply with data."""

    since: float  # the first failure: where the fault began
    counts_from: float  # where sick_after counts from (again from each return to up)
    failures: int = 0  # over the whole streak
    recent: int = 0  # since counts_from
    securities: frozenset[str] = frozenset()
    sick: bool = False  # the gateway was sick during the streak

    def wide(self) -> bool:
        """Whether this looks like the gateway's fault rather than one security's."""
        return self.sick or (self.failures >= WIDE_FAILURES and len(self.securities) >= 2)


class GatewayHealth:
    """One gateway's state as its owner sees it (see the module docstring)."""

    def __init__(
        self, policy: HealthPolicy | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy if policy is not None else HealthPolicy()
        self.clock = clock
        self.causes: Counter[str] = Counter()  # failures by cause, for metrics
        self.probes: Counter[str] = Counter()  # "sent", "ok"
        self.reset()

    def reset(self) -> None:
        """Forget the observations (a new ownership: another worker may have polled since)."""
        self.state = UP
        self.reason = ""
        self.last_error = ""
        self._unreachable: float | None = None
        self._refused = False  # a connection failed since it was last reachable
        self._streak: _Streak | None = None
        self._last_probe: float | None = None

    # -- events -----------------------------------------------------------------------

    def unreachable(self, reason: str) -> bool:
        """A connection attempt failed (or the connection went under a request); True at
        the first since the gateway was last reachable, so that an outage is told once
        however it began (a dropped connection starts the down clock before this)."""
        first = not self._refused
        self._refused = True
        if self._unreachable is None:
            self._unreachable = self.clock()
        self.last_error = reason
        self.causes[REFUSED] += 1
        return first

    def disconnected(self) -> None:
        """No connection now (it closed, or none is made yet): down after down_after
        unless one is made (counted from the first sign, not from a reconnect attempt)."""
        if self._unreachable is None:
            self._unreachable = self.clock()

    def reachable(self) -> None:
        """A connection is up: the gateway is no longer down (requests may still fail)."""
        self._unreachable = None
        self._refused = False

    def failed(self, security: str, cause: str, reason: str) -> None:
        """A quote request for ``security`` failed for a reason that is not the security's."""
        now = self.clock()
        streak = self._streak
        if streak is None:
            streak = self._streak = _Streak(now, now)
        streak.failures += 1
        streak.recent += 1
        streak.securities = streak.securities | {security}
        self.last_error = reason
        self.causes[cause] += 1
        if cause == DROPPED and self._unreachable is None:
            self._unreachable = now  # down too if reconnecting fails from here on

    def answered(self) -> float | None:
        """A capital-distribution reply with data. Returns how long the gateway-wide
        fault it ends lasted (None: there was none), to clear the backoffs it set."""
        streak, self._streak = self._streak, None
        if self.state == SICK:
            self.probes["ok"] += 1
        if streak is None or not streak.wide():
            return None
        return self.clock() - streak.since

    def probe_due(self) -> float:
        """Seconds until the next probe of a sick gateway may go out (0: now)."""
        if self._last_probe is None:
            return 0.0
        return max(0.0, self._last_probe + self.policy.probe_every - self.clock())

    def probed(self) -> None:
        """A probe is sent now."""
        self._last_probe = self.clock()
        self.probes["sent"] += 1

    # -- decision ---------------------------------------------------------------------

    def failing_for(self) -> float | None:
        """Seconds since the first failure without a reply with data (None: not failing)."""
        return None if self._streak is None else self.clock() - self._streak.since

    def check(self, others_up: bool) -> Change | None:
        """The state the gateway is in now, when it changed; ``others_up``: whether
        another gateway is up (a sick one's securities have somewhere to go)."""
        now = self.clock()
        new, reason = self._judge(now, others_up)
        if new == self.state:
            return None
        streak = self._streak
        if new == UP and streak is not None:
            # Back without a reply (a new connection, the last one standing): a whole
            # new sick_after of failures before it is sick again.
            streak.counts_from, streak.recent = now, 0
        if new == SICK:
            assert streak is not None
            streak.sick = True
            self._last_probe = now  # the first probe after probe_every
        self.state, self.reason = new, reason
        return Change(new, reason)

    def _judge(self, now: float, others_up: bool) -> tuple[str, str]:
        policy, streak = self.policy, self._streak
        if self._unreachable is not None and now - self._unreachable >= policy.down_after:
            waited = now - self._unreachable
            return DOWN, f"no connection for {waited:.0f}s: {self.last_error}"
        if self.state == DOWN:
            return UP, ""  # connected again
        if self.state == SICK:
            return (SICK, self.reason) if others_up and streak is not None else (UP, "")
        if (
            streak is not None
            and streak.recent > 0
            and others_up
            and now - streak.counts_from >= policy.sick_after
        ):
            return SICK, (
                f"quote requests failing for {now - streak.counts_from:.0f}s "
                f"({streak.recent} failures): {self.last_error}"
            )
        return UP, ""

    def describe(self) -> dict[str, Any]:
        """The owner's observations for ``/status/``."""
        failing = self.failing_for()
        return {
            "state": self.state,
            "reason": self.reason,
            "failing_for_s": None if failing is None else round(failing, 3),
            "failures": dict(self.causes),
            "probes": dict(self.probes),
        }
