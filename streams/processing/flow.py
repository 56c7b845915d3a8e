"""Per-security rolling flow: cumulative snapshots -> R_W over event time.

Pure logic, no Kafka. A Faust agent keeps one :class:`FlowState` per security in a
plain table (stored through :meth:`FlowState.to_dict`) and feeds it snapshots in
partition order; every number here is a function of event times and amounts only,
so replaying a recorded day reproduces the live output.

Definitions (DESIGN.md): net_c = in_c - out_c, L = net_super + net_big, T = sum of
the eight amounts, R_W(i) = X(i) - X(at t_i - W) for X in the four nets, L and T,
where X(at t) is the last value at or before t on the same day, 0 when the day
started inside the window.

Corrections. A snapshot in which any of the eight amounts is lower than in the
previous snapshot of the day is a reset or correction. It becomes the new
baseline: the step from the previous snapshot to it counts as zero change for
every series, later steps count normally. Internally the rolling series are kept
in "adjusted" form, adjusted = raw + offset, and a correction sets the offset so
that adjusted(i) == adjusted(i - 1) (adjusted T is also kept non-decreasing against
rounding of the offset). Every adjusted step is therefore either a
genuine step between two consistent snapshots or zero, so R_W of L can never fall
by more than the large out-amounts genuinely grew in the window, and T is
non-decreasing (dT >= 0). Published ``net_*``, ``large_net`` and ``turnover`` are
the raw values OpenD reported; only the changes use the adjusted series. Without
corrections the offset is exactly zero and R_W equals the plain definition.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

CLASSES: tuple[str, ...] = ("super", "big", "mid", "small")
AMOUNT_NAMES: tuple[str, ...] = tuple(f"in_{c}" for c in CLASSES) + tuple(
    f"out_{c}" for c in CLASSES
)
DEFAULT_WINDOW = 300.0
MAX_HISTORY = 4096
STATE_VERSION = 1

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# One history entry: (event_ts, net_super, net_big, net_mid, net_small, turnover), adjusted.
_Entry = tuple[float, float, float, float, float, float]
_ZERO: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Snapshot:
    """The part of one capital-distribution snapshot the flow needs.

    Amounts are cumulative since the session opened; ``event_ts`` is OpenD's
    updateTimestamp (epoch seconds), ``trading_day`` the market-local date.
    """

    security: str
    market: str
    trading_day: str
    event_ts: float
    in_super: float
    in_big: float
    in_mid: float
    in_small: float
    out_super: float
    out_big: float
    out_mid: float
    out_small: float

    def __post_init__(self) -> None:
        # Reject what would poison the rolling state; the caller dead-letters the record.
        if not _DAY.match(self.trading_day):
            raise ValueError(f"trading_day must be yyyy-MM-dd, got {self.trading_day!r}")
        for name in ("event_ts", *AMOUNT_NAMES):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def amounts(self) -> tuple[float, ...]:
        """The eight amounts: in_super, in_big, in_mid, in_small, out_super, ... out_small."""
        return tuple(getattr(self, name) for name in AMOUNT_NAMES)


@dataclass(frozen=True)
class FlowPoint:
    """Flow features of one accepted snapshot (the capflow.flow.v1 numbers)."""

    security: str
    market: str
    trading_day: str
    event_ts: float
    window_s: float
    net_super: float
    net_big: float
    net_mid: float
    net_small: float
    large_net: float
    turnover: float
    change_super: float
    change_big: float
    change_mid: float
    change_small: float
    change_large: float  # R_W of L: what the detector compares with theta
    change_turnover: float  # dT
    snapshots_in_window: int

    @property
    def net(self) -> dict[str, float]:
        return {c: getattr(self, f"net_{c}") for c in CLASSES}

    @property
    def change(self) -> dict[str, float]:
        out = {c: getattr(self, f"change_{c}") for c in CLASSES}
        out["large"] = self.change_large
        out["turnover"] = self.change_turnover
        return out

    @property
    def r_w(self) -> float:
        return self.change_large


def _values(snap: Snapshot) -> tuple[float, float, float, float, float]:
    """Raw (net_super, net_big, net_mid, net_small, turnover) of a snapshot."""
    net_super = snap.in_super - snap.out_super
    net_big = snap.in_big - snap.out_big
    net_mid = snap.in_mid - snap.out_mid
    net_small = snap.in_small - snap.out_small
    turnover = (
        snap.in_super
        + snap.in_big
        + snap.in_mid
        + snap.in_small
        + snap.out_super
        + snap.out_big
        + snap.out_mid
        + snap.out_small
    )
    return (net_super, net_big, net_mid, net_small, turnover)


class FlowState:
    """Rolling state of one security for its current trading day.

    Keeps only what answers "value at or before t - W" for future snapshots: the
    newest entry at or before t - W plus everything after it (event time only
    moves forward, so older entries can never be a baseline again), capped at
    ``max_history`` entries. If the cap ever drops the baseline (more than
    ``max_history`` snapshots inside one window) the oldest kept entry stands in
    for it and ``truncated`` is set.
    """

    def __init__(self, window: float = DEFAULT_WINDOW, max_history: int = MAX_HISTORY) -> None:
        if not (isinstance(window, int | float) and math.isfinite(window) and window > 0):
            raise ValueError(f"window must be a finite number > 0, got {window!r}")
        if max_history < 2:
            raise ValueError(f"max_history must be >= 2, got {max_history}")
        self.window = float(window)
        self.max_history = max_history
        self.trading_day: str | None = None
        self.last_ts: float | None = None
        self.last_amounts: tuple[float, ...] | None = None
        self.offset: tuple[float, float, float, float, float] = _ZERO
        self.history: deque[_Entry] = deque()
        self.truncated = False
        # Counters, for metrics and tests; they survive day changes.
        self.stale = 0
        self.duplicates = 0
        self.corrections = 0

    def _start_day(self, day: str) -> None:
        self.trading_day = day
        self.last_ts = None
        self.last_amounts = None
        self.offset = _ZERO
        self.history.clear()
        self.truncated = False

    def update(self, snap: Snapshot) -> FlowPoint | None:
        """Fold one snapshot in; the point to publish, or None for duplicates and stale ones."""
        if self.trading_day is None or snap.trading_day > self.trading_day:
            self._start_day(snap.trading_day)
        elif snap.trading_day < self.trading_day:
            self.stale += 1
            return None
        amounts = snap.amounts
        t = snap.event_ts
        if self.last_ts is not None:
            if t < self.last_ts:
                self.stale += 1
                return None
            if t == self.last_ts and amounts == self.last_amounts:
                self.duplicates += 1
                return None

        raw = _values(snap)
        prev = self.history[-1] if self.history else None
        entry: _Entry
        if prev is not None and any(
            a < p for a, p in zip(amounts, self.last_amounts or (), strict=True)
        ):
            # Correction: rebase so this snapshot continues the adjusted series flat.
            self.offset = (
                prev[1] - raw[0],
                prev[2] - raw[1],
                prev[3] - raw[2],
                prev[4] - raw[3],
                prev[5] - raw[4],
            )
            self.corrections += 1
            entry = (t, prev[1], prev[2], prev[3], prev[4], prev[5])
        else:
            off = self.offset
            turnover = raw[4] + off[4]
            if prev is not None and turnover < prev[5]:
                turnover = prev[5]  # rounding of the offset must not make T go down
            entry = (
                t,
                raw[0] + off[0],
                raw[1] + off[1],
                raw[2] + off[2],
                raw[3] + off[3],
                turnover,
            )
        if self.history and self.history[-1][0] == t:
            self.history[-1] = entry  # same event time: the later reading wins
        else:
            self.history.append(entry)
        self.last_ts = t
        self.last_amounts = amounts

        cutoff = t - self.window
        history = self.history
        while len(history) >= 2 and history[1][0] <= cutoff:
            history.popleft()
        while len(history) > self.max_history:
            history.popleft()
            self.truncated = True

        first = history[0]
        if first[0] <= cutoff or self.truncated:
            base = first[1:]
            in_window = len(history) - 1
        else:
            base = _ZERO  # the day started inside the window
            in_window = len(history)

        return FlowPoint(
            security=snap.security,
            market=snap.market,
            trading_day=snap.trading_day,
            event_ts=t,
            window_s=self.window,
            net_super=raw[0],
            net_big=raw[1],
            net_mid=raw[2],
            net_small=raw[3],
            large_net=raw[0] + raw[1],
            turnover=raw[4],
            change_super=entry[1] - base[0],
            change_big=entry[2] - base[1],
            change_mid=entry[3] - base[2],
            change_small=entry[4] - base[3],
            change_large=(entry[1] + entry[2]) - (base[0] + base[1]),
            change_turnover=entry[5] - base[4],
            snapshots_in_window=in_window,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy of the state (for a Faust table value)."""
        return {
            "v": STATE_VERSION,
            "window": self.window,
            "max_history": self.max_history,
            "trading_day": self.trading_day,
            "last_ts": self.last_ts,
            "last_amounts": None if self.last_amounts is None else list(self.last_amounts),
            "offset": list(self.offset),
            "history": [list(e) for e in self.history],
            "truncated": self.truncated,
            "stale": self.stale,
            "duplicates": self.duplicates,
            "corrections": self.corrections,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlowState:
        """Restore what :meth:`to_dict` wrote; the result behaves identically."""
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported FlowState version {data.get('v')!r}")
        state = cls(window=data["window"], max_history=int(data["max_history"]))
        state.trading_day = data["trading_day"]
        state.last_ts = None if data["last_ts"] is None else float(data["last_ts"])
        last = data["last_amounts"]
        state.last_amounts = None if last is None else tuple(float(a) for a in last)
        o = [float(x) for x in data["offset"]]
        state.offset = (o[0], o[1], o[2], o[3], o[4])
        for e in data["history"]:
            f = [float(x) for x in e]
            state.history.append((f[0], f[1], f[2], f[3], f[4], f[5]))
        state.truncated = bool(data["truncated"])
        state.stale = int(data["stale"])
        state.duplicates = int(data["duplicates"])
        state.corrections = int(data["corrections"])
        return state
