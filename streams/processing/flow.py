"""Per-security rolling flow: cumulative snapshots -> R_W over event time.

Pure logic, no Kafka. A Faust agent keeps one :class:`FlowState` per security in a
plain table (stored through :meth:`FlowState.to_dict`) and feeds it snapshots in
partition order; every number here is a function of event times and amounts only,
so replaying a recorded day reproduces the live output. The user documentation of
these numbers is docs/definitions.md.

Definitions: net_c = in_c - out_c, L = net_super + net_big, T = sum of the eight
amounts, R_W(i) = X(i) - X(at t_i - W) for X in the four nets, L and T, where X(at t)
is the last value at or before t on the same day, 0 when the day started inside the
window.

Late and duplicate snapshots. One older than the last accepted snapshot of its
security (or of an earlier trading day) is ``stale``; one with the same event time
and amounts as the last accepted one is a ``duplicate``. Neither changes anything
but its counter, and neither is published.

Absent super amounts. OpenD may leave out the two super amounts (optional on its
wire; capflow's record keeps them unset). An absent amount carries the last
accepted value of that amount on the day, 0 at the day's start, so an absence never
creates a step in any series.

Corrections, per amount. An amount lower than in the previous accepted snapshot of
the day is a reset or correction of that amount: it is re-based, so its step counts
as zero and its later steps count normally; the other amounts of the same snapshot
count their steps as usual, so genuine flow in the classes that were not corrected
is kept. Internally each amount is kept "adjusted": adjusted = raw + offset, where
an amount's offset changes only when that amount is corrected, and an adjusted
amount never decreases. The rolling series are computed from the adjusted amounts,
so T never decreases and R_W of L can never fall by more than the large
out-amounts genuinely grew in the window. Published ``net_*``, ``large_net`` and
``turnover`` are the raw values (with absent super amounts carried); only the
changes use the adjusted series. Without corrections every offset is exactly zero
and R_W equals the plain definition. Negative amounts never get here: they are
invalid (streams.domain.validation), not corrections.
"""

from __future__ import annotations

import math
import operator
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from streams.domain.amounts import AMOUNT_NAMES, CLASSES, ZERO, Amounts
from streams.domain.validation import check_amounts
from streams.processing.stored import from_plain, to_plain

__all__ = [
    "AMOUNT_NAMES",
    "CLASSES",
    "DEFAULT_WINDOW",
    "FlowPoint",
    "FlowState",
    "Level",
    "Skip",
    "Snapshot",
]

DEFAULT_WINDOW = 300.0
MAX_HISTORY = 4096
STATE_VERSION = 2

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RECORD_FIELDS = tuple((name, f"capital_{name}") for name in AMOUNT_NAMES)  # for validation


class Skip(StrEnum):
    """Why a snapshot changed nothing downstream."""

    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclass(frozen=True)
class Snapshot:
    """The part of one capital-distribution snapshot the flow needs.

    Amounts are cumulative since the session opened; ``event_ts`` is OpenD's
    updateTimestamp (epoch seconds), ``trading_day`` the market-local date. The
    super amounts may be None: absent on the wire (see the module docstring).
    """

    security: str
    market: str
    trading_day: str
    event_ts: float
    in_super: float | None
    in_big: float
    in_mid: float
    in_small: float
    out_super: float | None
    out_big: float
    out_mid: float
    out_small: float

    def __post_init__(self) -> None:
        # Reject what would poison the rolling state; the caller dead-letters the record.
        if not _DAY.match(self.trading_day):
            raise ValueError(f"trading_day must be yyyy-MM-dd, got {self.trading_day!r}")
        ts = self.event_ts
        if isinstance(ts, bool) or not isinstance(ts, int | float):
            raise ValueError(f"event_ts must be a number, got {ts!r}")
        if not math.isfinite(ts):
            raise ValueError(f"event_ts must be finite, got {ts!r}")
        object.__setattr__(self, "event_ts", float(ts))
        check_amounts({key: getattr(self, name) for name, key in _RECORD_FIELDS})
        for name in AMOUNT_NAMES:
            value = getattr(self, name)
            if value is not None and type(value) is not float:
                object.__setattr__(self, name, float(value))

    @property
    def amounts(self) -> tuple[float | None, ...]:
        """The eight amounts: in_super, in_big, in_mid, in_small, out_super, ... out_small."""
        return tuple(getattr(self, name) for name in AMOUNT_NAMES)

    def resolved(self, carry: Amounts) -> Amounts:
        """The eight amounts, an absent super amount taking its value from ``carry``."""
        return Amounts(
            carry.in_super if self.in_super is None else self.in_super,
            self.in_big,
            self.in_mid,
            self.in_small,
            carry.out_super if self.out_super is None else self.out_super,
            self.out_big,
            self.out_mid,
            self.out_small,
        )


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


class Level(NamedTuple):
    """One history entry: the adjusted series (four nets and T) at one event time."""

    ts: float
    net_super: float
    net_big: float
    net_mid: float
    net_small: float
    turnover: float

    @classmethod
    def of(cls, ts: float, adjusted: Amounts) -> Level:
        return cls(
            ts,
            adjusted.net_super,
            adjusted.net_big,
            adjusted.net_mid,
            adjusted.net_small,
            adjusted.turnover,
        )

    @property
    def large(self) -> float:
        return self.net_super + self.net_big


_ORIGIN = Level(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # the baseline when the day began in the window


@dataclass(eq=False)
class FlowState:
    """Rolling state of one security for its current trading day.

    Keeps only what answers "value at or before t - W" for future snapshots: the
    newest entry at or before t - W plus everything after it (event time only
    moves forward, so older entries can never be a baseline again), capped at
    ``max_history`` entries. If the cap ever drops the baseline (more than
    ``max_history`` snapshots inside one window) the oldest kept entry stands in
    for it and ``truncated`` is set.

    The fields are the stored state (:meth:`to_dict`, via streams.processing.stored),
    in the order a version 2 state has always been written.
    """

    window: float = DEFAULT_WINDOW
    max_history: int = MAX_HISTORY
    trading_day: str | None = None
    last_ts: float | None = None
    last_amounts: Amounts | None = None  # raw, of the last accepted snapshot
    adjusted: Amounts | None = None  # adjusted, of the last accepted snapshot
    offset: Amounts = ZERO  # adjusted - raw, per amount, since its last correction
    history: deque[Level] = field(default_factory=deque)
    truncated: bool = False
    # Counters, for metrics and tests; they survive day changes.
    stale: int = 0
    duplicates: int = 0
    corrections: int = 0

    def __post_init__(self) -> None:
        window = self.window
        if not (isinstance(window, int | float) and math.isfinite(window) and window > 0):
            raise ValueError(f"window must be a finite number > 0, got {window!r}")
        if self.max_history < 2:
            raise ValueError(f"max_history must be >= 2, got {self.max_history}")
        self.window = float(window)
        if self.offset == ZERO:
            self.offset = ZERO  # by identity: the fast path of _correct

    def _start_day(self, day: str) -> None:
        self.trading_day = day
        self.last_ts = None
        self.last_amounts = None
        self.adjusted = None
        self.offset = ZERO
        self.history.clear()
        self.truncated = False

    def update(self, snap: Snapshot) -> FlowPoint | None:
        """Fold one snapshot in; the point to publish, or None for duplicates and stale ones."""
        result = self.fold(snap)
        return result if isinstance(result, FlowPoint) else None

    def fold(self, snap: Snapshot) -> FlowPoint | Skip:
        """Fold one snapshot in; the point to publish, or why nothing changed."""
        skip = self._admit_day(snap.trading_day)
        if skip is not None:
            return skip
        raw = snap.resolved(self.last_amounts or ZERO)
        skip = self._admit_time(snap.event_ts, raw)
        if skip is not None:
            return skip
        adjusted = self._correct(raw)
        level = Level.of(snap.event_ts, adjusted)
        self._record(level, raw, adjusted)
        base, in_window = self._baseline(snap.event_ts)
        return self._point(snap, raw, level, base, in_window)

    def _admit_day(self, day: str) -> Skip | None:
        """A later day starts the series again; an earlier one is stale."""
        if self.trading_day is None or day > self.trading_day:
            self._start_day(day)
        elif day < self.trading_day:
            self.stale += 1
            return Skip.STALE
        return None

    def _admit_time(self, t: float, raw: Amounts) -> Skip | None:
        """Older than the last accepted snapshot: stale; same time and amounts: duplicate."""
        if self.last_ts is None:
            return None
        if t < self.last_ts:
            self.stale += 1
            return Skip.STALE
        if t == self.last_ts and raw == self.last_amounts:
            self.duplicates += 1
            return Skip.DUPLICATE
        return None

    def _correct(self, raw: Amounts) -> Amounts:
        """The adjusted amounts of an admitted snapshot: each amount that went down is
        re-based (its step is zero), the others step as usual."""
        last_raw, last_adj = self.last_amounts, self.adjusted
        if last_raw is None or last_adj is None:
            return raw  # first of the day: offsets are zero
        raws, lasts = raw.values(), last_raw.values()
        if self.offset is ZERO and all(map(operator.ge, raws, lasts)):
            return raw  # the common case, exact: adjusted == raw
        offsets = list(self.offset.values())
        adjusted: list[float] = []
        corrected = False
        for i, (r, lr, la) in enumerate(zip(raws, lasts, last_adj.values(), strict=True)):
            if r < lr:
                offsets[i] = la - r
                adjusted.append(la)
                corrected = True
            else:
                adjusted.append(max(r + offsets[i], la))  # rounding never steps back
        if corrected:
            self.offset = Amounts.of(offsets)
            self.corrections += 1
        return Amounts.of(adjusted)

    def _record(self, level: Level, raw: Amounts, adjusted: Amounts) -> None:
        """Remember the accepted snapshot and drop history no future baseline needs."""
        history = self.history
        if history and history[-1].ts == level.ts:
            history[-1] = level  # same event time: the later reading wins
        else:
            history.append(level)
        self.last_ts = level.ts
        self.last_amounts = raw
        self.adjusted = adjusted
        cutoff = level.ts - self.window
        while len(history) >= 2 and history[1].ts <= cutoff:
            history.popleft()
        while len(history) > self.max_history:
            history.popleft()
            self.truncated = True

    def _baseline(self, t: float) -> tuple[Level, int]:
        """The level at or before t - W (the origin if the day began inside the window)
        and how many snapshots after it are in the window."""
        first = self.history[0]
        if first.ts <= t - self.window or self.truncated:
            return first, len(self.history) - 1
        return _ORIGIN, len(self.history)

    def _point(
        self, snap: Snapshot, raw: Amounts, level: Level, base: Level, in_window: int
    ) -> FlowPoint:
        return FlowPoint(
            security=snap.security,
            market=snap.market,
            trading_day=snap.trading_day,
            event_ts=level.ts,
            window_s=self.window,
            net_super=raw.net_super,
            net_big=raw.net_big,
            net_mid=raw.net_mid,
            net_small=raw.net_small,
            large_net=raw.large_net,
            turnover=raw.turnover,
            change_super=level.net_super - base.net_super,
            change_big=level.net_big - base.net_big,
            change_mid=level.net_mid - base.net_mid,
            change_small=level.net_small - base.net_small,
            change_large=level.large - base.large,
            change_turnover=level.turnover - base.turnover,
            snapshots_in_window=in_window,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy of the state (for a Faust table value)."""
        return {"v": STATE_VERSION, **to_plain(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowState:
        """Restore what :meth:`to_dict` wrote, or a version 1 state; behaves identically."""
        version = data.get("v")
        if version == 1:
            data = _upgrade_v1(data)
        elif version != STATE_VERSION:
            raise ValueError(f"unsupported FlowState version {version!r}")
        return from_plain(cls, {k: v for k, v in data.items() if k != "v"}, "flow")


def _upgrade_v1(old: Mapping[str, Any]) -> dict[str, Any]:
    """Version 1 (changelogs may still hold it) in version 2's shape.

    Version 1 kept offsets of the five series (four nets and T) and no adjusted
    amounts; version 2 keeps per-amount offsets and the adjusted amounts.
    """
    try:
        offset = _offsets_from_v1([float(x) for x in old["offset"]])
        last = old["last_amounts"]
        adjusted = None if last is None else Amounts.of(last) + offset
        body = {key: old[key] for key in _V1_SAME}
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"flow (version 1): not a usable state ({exc!r})") from None
    return {**body, "adjusted": _list(adjusted), "offset": list(offset.values())}


_V1_SAME = (
    "window",
    "max_history",
    "trading_day",
    "last_ts",
    "last_amounts",
    "history",
    "truncated",
    "stale",
    "duplicates",
    "corrections",
)


def _list(amounts: Amounts | None) -> list[float] | None:
    return None if amounts is None else list(amounts.values())


def _offsets_from_v1(offset: list[float]) -> Amounts:
    """Per-amount offsets equivalent to a version-1 state's offsets of the five series
    (four nets and T), so a state stored before per-amount corrections continues its
    adjusted series without a jump."""
    ins = [max(o, 0.0) for o in offset[:4]]
    outs = [max(-o, 0.0) for o in offset[:4]]
    spare = (offset[4] - (sum(ins) + sum(outs))) / 2  # fix T, keep every net
    ins[3] += spare
    outs[3] += spare
    return Amounts(*ins, *outs)
