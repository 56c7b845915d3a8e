"""Per-security rolling flow: cumulative snapshots -> R_W over event time.

Pure logic, no Kafka. A Faust agent keeps one :class:`FlowState` per security in a
plain table (stored through :meth:`FlowState.to_dict`) and feeds it snapshots in
partition order; every number here is a function of event times and amounts only,
so replaying a recorded day reproduces the live output. The user documentation of
these numbers is docs/definitions.md.

Definitions: net_c = in_c - out_c, L = net_super + net_big, T = sum of the eight
amounts, R_W(i) = X(i) - X(at t_i - W) for X in the four nets, L and T, where X(at t)
is the latest level at or before t on the same day.

Levels and baselines. A security's day history holds levels from snapshots (the four
nets and T) and from minute rows of OpenD's capital flow (3211: the four nets, no
turnover), folded in by :meth:`FlowState.fold_minutes`. The baseline of a point at t is
the latest level at or before t - W from either source (a snapshot wins a tie), the
open of the day's regular session counting as a level of zeros (the origin). T at a
minute level is interpolated linearly, over trading time, between the latest snapshot
level before it (or the open, T = 0) and the earliest snapshot level after it. When
t - W is before the open, the origin is the baseline. A level more than W of trading
time (a lunch break does not count) before t - W is no baseline: R_W never spans a
hole in polling, nor the whole day's flow for a worker that starts after the open;
such a point has no baseline and no R_W until history fills the gap. Each point names
its baseline (:class:`Baseline`); the detector does not step on a point without one.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from streams.domain.amounts import AMOUNT_NAMES, CLASSES, ZERO, Amounts
from streams.domain.market import day_sessions, session_open, trading_seconds
from streams.domain.validation import check_amounts
from streams.processing.stored import from_plain, to_plain

__all__ = [
    "AMOUNT_NAMES",
    "CLASSES",
    "DEFAULT_WINDOW",
    "Baseline",
    "FlowPoint",
    "FlowState",
    "Level",
    "MinuteLevel",
    "Skip",
    "Snapshot",
]

DEFAULT_WINDOW = 300.0
MAX_HISTORY = 4096
STATE_VERSION = 3

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RECORD_FIELDS = tuple((name, f"capital_{name}") for name in AMOUNT_NAMES)  # for validation


class Skip(StrEnum):
    """Why a snapshot changed nothing downstream."""

    DUPLICATE = "duplicate"
    STALE = "stale"


class Baseline(StrEnum):
    """Which level a point's R_W was measured against (the flow record's ``baseline``)."""

    SNAPSHOT = "snapshot"  # a snapshot at or before t - W
    MINUTE = "minute"  # a minute row of the day's capital flow at or before t - W
    ORIGIN = "origin"  # the day opened inside the window: zero
    NONE = "none"  # the day opened before the window and no level is known: no R_W


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
    baseline: Baseline = Baseline.SNAPSHOT  # NONE: the change fields are 0, not published
    baseline_ts: float | None = None  # event time of the baseline level (None: origin, none)

    @property
    def has_change(self) -> bool:
        """Whether R_W is known (the point has a baseline)."""
        return self.baseline is not Baseline.NONE

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


class MinuteLevel(NamedTuple):
    """One minute row of OpenD's capital flow folded in: the four class nets at ``ts``
    (on the adjusted scale of the snapshot levels), without turnover."""

    ts: float
    net_super: float
    net_big: float
    net_mid: float
    net_small: float

    @property
    def large(self) -> float:
        return self.net_super + self.net_big


_ORIGIN = Level(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # the baseline when the day began in the window


class Resolved(NamedTuple):
    """A point's baseline: its kind, and the level (None only for NONE)."""

    kind: Baseline
    level: Level | None


def interpolate_turnover(
    at: float,
    before: Level | None,
    after: Level,
    open_ts: float | None,
    sessions: tuple[tuple[float, float], ...] = (),
) -> float:
    """T at ``at`` on the line from the snapshot level ``before`` (None: the open, T = 0)
    to the snapshot level ``after``, over trading time (nothing trades at lunch)."""
    if before is None:
        if open_ts is None or open_ts >= after.ts:
            return 0.0 if at < after.ts else after.turnover
        t0, v0 = open_ts, 0.0
    else:
        t0, v0 = before.ts, before.turnover
    if at >= after.ts:
        return after.turnover
    if at <= t0:
        return v0
    span = trading_seconds(sessions, t0, after.ts)
    if span <= 0:
        return after.turnover
    return v0 + (after.turnover - v0) * trading_seconds(sessions, t0, at) / span


def minute_as_level(
    minute: MinuteLevel,
    before: Level | None,
    after: Level,
    open_ts: float | None,
    sessions: tuple[tuple[float, float], ...] = (),
) -> Level:
    """A minute level with its turnover interpolated between the snapshot levels around it."""
    return Level(
        minute.ts,
        minute.net_super,
        minute.net_big,
        minute.net_mid,
        minute.net_small,
        interpolate_turnover(minute.ts, before, after, open_ts, sessions),
    )


def choose_baseline(
    cutoff: float,
    before: Level | None,
    after: Level,
    minute: MinuteLevel | None,
    open_ts: float | None,
    sessions: tuple[tuple[float, float], ...],
    window: float,
) -> Resolved:
    """The baseline at ``cutoff`` (t - W) from the latest snapshot level at or before it
    (``before``), the earliest one after it (``after``), the latest minute level at or
    before it, and the day's open; see the module docstring."""
    if minute is not None and (before is None or minute.ts > before.ts):
        level = minute_as_level(minute, before, after, open_ts, sessions)
        return _fresh(Resolved(Baseline.MINUTE, level), level.ts, cutoff, sessions, window)
    if before is not None:
        return _fresh(Resolved(Baseline.SNAPSHOT, before), before.ts, cutoff, sessions, window)
    if open_ts is None or cutoff < open_ts:
        return Resolved(Baseline.ORIGIN, _ORIGIN)  # the day opened inside the window
    return _fresh(Resolved(Baseline.ORIGIN, _ORIGIN), open_ts, cutoff, sessions, window)


def _fresh(
    base: Resolved,
    since: float,
    cutoff: float,
    sessions: tuple[tuple[float, float], ...],
    window: float,
) -> Resolved:
    """``base`` unless its level (at ``since``) is more than W of trading time before
    t - W: R_W would then span a hole in polling (or the day so far), not the window."""
    if not too_old(since, cutoff, sessions, window):
        return base
    return Resolved(Baseline.NONE, None)


def too_old(
    since: float, cutoff: float, sessions: tuple[tuple[float, float], ...], window: float
) -> bool:
    """Whether a level at ``since`` lies more than W of trading time before ``cutoff``
    (t - W): between the two lies a hole in polling (or the day so far)."""
    return since < cutoff - window and trading_seconds(sessions, since, cutoff) > window


def place_minutes(
    rows: Sequence[MinuteLevel], last_valid: float | None, shift: Sequence[float]
) -> list[MinuteLevel]:
    """Minute rows as levels: a row later than ``last_valid`` (the minute in progress) at
    ``last_valid``, the instant its value belongs to; each net moved by ``shift``."""
    placed = []
    for row in rows:
        ts = row.ts if last_valid is None or row.ts <= last_valid else last_valid
        placed.append(MinuteLevel(ts, *(v + d for v, d in zip(row[1:], shift, strict=True))))
    return placed


def make_point(
    security: str,
    market: str,
    day: str,
    window: float,
    level: Level,
    base: Resolved,
    in_window: int,
    raw: Amounts | None = None,
) -> FlowPoint:
    """The point of ``level`` measured against ``base``; the published nets, L and T are
    ``raw``'s (a snapshot's amounts as OpenD sent them), else the level's own."""
    ref = base.level if base.level is not None else level  # NONE: changes are 0
    nets = (
        (raw.net_super, raw.net_big, raw.net_mid, raw.net_small, raw.large_net, raw.turnover)
        if raw is not None
        else (*level[1:5], level.large, level.turnover)
    )
    return FlowPoint(
        security=security,
        market=market,
        trading_day=day,
        event_ts=level.ts,
        window_s=window,
        net_super=nets[0],
        net_big=nets[1],
        net_mid=nets[2],
        net_small=nets[3],
        large_net=nets[4],
        turnover=nets[5],
        change_super=level.net_super - ref.net_super,
        change_big=level.net_big - ref.net_big,
        change_mid=level.net_mid - ref.net_mid,
        change_small=level.net_small - ref.net_small,
        change_large=level.large - ref.large,
        change_turnover=level.turnover - ref.turnover,
        snapshots_in_window=in_window,
        baseline=base.kind,
        baseline_ts=ref.ts if base.kind in (Baseline.SNAPSHOT, Baseline.MINUTE) else None,
    )


@dataclass(eq=False)
class FlowState:
    """Rolling state of one security for its current trading day.

    Keeps only what answers "level at or before t - W" for future snapshots: per
    source (snapshot levels in ``history``, minute levels in ``minutes``) the newest
    entry at or before t - W plus everything after it (event time only moves
    forward, so older entries can never be a baseline again), capped at
    ``max_history`` entries. If the cap ever drops the baseline (more than
    ``max_history`` snapshots inside one window) the oldest kept entry stands in for
    it and ``truncated`` is set.

    The fields are the stored state (:meth:`to_dict`, via streams.processing.stored),
    in the order a version 2 state has always been written, version 3's after them.
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
    # Version 3: the day's market and open, its first snapshot, and its minute levels.
    market: str = ""
    open_ts: float | None = None  # regular open of the day (None: hours unknown)
    first_ts: float | None = None  # event time of the first accepted snapshot of the day
    minutes: deque[MinuteLevel] = field(default_factory=deque)

    def __post_init__(self) -> None:
        window = self.window
        if not (isinstance(window, int | float) and math.isfinite(window) and window > 0):
            raise ValueError(f"window must be a finite number > 0, got {window!r}")
        if self.max_history < 2:
            raise ValueError(f"max_history must be >= 2, got {self.max_history}")
        self.window = float(window)
        if self.offset == ZERO:
            self.offset = ZERO  # by identity: the fast path of _correct

    def _start_day(self, day: str, market: str) -> None:
        self.trading_day = day
        self.last_ts = None
        self.last_amounts = None
        self.adjusted = None
        self.offset = ZERO
        self.history.clear()
        self.truncated = False
        self.first_ts = None
        self.minutes.clear()
        self._set_market(market)

    def _set_market(self, market: str) -> None:
        self.market = market
        self.open_ts = session_open(market, self.trading_day or "")

    @property
    def sessions(self) -> tuple[tuple[float, float], ...]:
        """The day's regular sessions (empty: hours unknown), for trading-time ages."""
        return day_sessions(self.market, self.trading_day or "")

    def update(self, snap: Snapshot) -> FlowPoint | None:
        """Fold one snapshot in; the point to publish, or None for duplicates and stale ones."""
        result = self.fold(snap)
        return result if isinstance(result, FlowPoint) else None

    def fold(self, snap: Snapshot) -> FlowPoint | Skip:
        """Fold one snapshot in; the point to publish, or why nothing changed."""
        skip = self._admit_day(snap.trading_day, snap.market)
        if skip is not None:
            return skip
        raw = snap.resolved(self.last_amounts or ZERO)
        skip = self._admit_time(snap.event_ts, raw)
        if skip is not None:
            return skip
        adjusted = self._correct(raw)
        level = Level.of(snap.event_ts, adjusted)
        self._record(level, raw, adjusted)
        base = self._baseline(snap.event_ts)
        return self._point(snap, raw, level, base, self._in_window(snap.event_ts))

    def _admit_day(self, day: str, market: str) -> Skip | None:
        """A later day starts the series again; an earlier one is stale."""
        if self.trading_day is None or day > self.trading_day:
            self._start_day(day, market)
        elif day < self.trading_day:
            self.stale += 1
            return Skip.STALE
        elif market != self.market:
            self._set_market(market)  # a state stored before version 3 learns its market
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
        if self.first_ts is None:
            self.first_ts = level.ts
        self.last_ts = level.ts
        self.last_amounts = raw
        self.adjusted = adjusted
        self._trim(level.ts - self.window)

    def _trim(self, cutoff: float) -> None:
        """Per source, keep the newest level at or before ``cutoff`` and all after it."""
        history = self.history
        while len(history) >= 2 and history[1].ts <= cutoff:
            history.popleft()
        while len(history) > self.max_history:
            history.popleft()
            self.truncated = True
        minutes = self.minutes
        while len(minutes) >= 2 and minutes[1].ts <= cutoff:
            minutes.popleft()

    def _baseline(self, t: float) -> Resolved:
        """The level at or before t - W from either source, the origin, or none.

        Relies on :meth:`_trim`: the newest level at or before t - W of each source is
        its first entry, when there is one.
        """
        cutoff = t - self.window
        history, minutes = self.history, self.minutes
        first = history[0]  # there is one: the snapshot being folded
        if first.ts <= cutoff or self.truncated:
            before, after = first, history[1] if len(history) > 1 else first
        else:
            before, after = None, first
        minute = minutes[0] if minutes and minutes[0].ts <= cutoff else None
        return choose_baseline(
            cutoff, before, after, minute, self.open_ts, self.sessions, self.window
        )

    def _in_window(self, t: float) -> int:
        """Snapshots with event time in (t - W, t]."""
        history = self.history
        if history[0].ts <= t - self.window or self.truncated:
            return len(history) - 1
        return len(history)

    def fold_minutes(
        self, market: str, day: str, rows: Sequence[MinuteLevel], last_valid: float | None
    ) -> bool:
        """Fold in the minute rows of a capital-flow series of ``day`` (OpenD's nets,
        their ``ts`` the row times); False when the series is of an earlier day.

        A row later than ``last_valid`` (the minute in progress) is placed at
        ``last_valid``, the instant its value belongs to. Rows are moved onto the
        adjusted scale of the snapshot levels (the net offsets of corrections so far),
        and a later series' row replaces an earlier one of the same minute.
        """
        if self.trading_day is not None and day < self.trading_day:
            return False
        if self.trading_day is None or day > self.trading_day:
            self._start_day(day, market)
        merged = {m.ts: m for m in self.minutes}
        merged.update((m.ts, m) for m in place_minutes(rows, last_valid, self.net_offsets()))
        self.minutes = deque(merged[ts] for ts in sorted(merged))
        if self.last_ts is not None:
            self._trim(self.last_ts - self.window)
        return True

    def net_offsets(self) -> tuple[float, float, float, float]:
        """The adjusted-minus-raw shift of each class net (zero without corrections)."""
        o = self.offset
        return (
            o.in_super - o.out_super,
            o.in_big - o.out_big,
            o.in_mid - o.out_mid,
            o.in_small - o.out_small,
        )

    def _point(
        self, snap: Snapshot, raw: Amounts, level: Level, base: Resolved, in_window: int
    ) -> FlowPoint:
        return make_point(
            snap.security, snap.market, snap.trading_day, self.window, level, base, in_window, raw
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy of the state (for a Faust table value)."""
        return {"v": STATE_VERSION, **to_plain(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowState:
        """Restore what :meth:`to_dict` wrote, or a version 1 or 2 state (which learns
        its market from the next snapshot); behaves identically."""
        version = data.get("v")
        if version == 1:
            data = _upgrade_v2(_upgrade_v1(data))
        elif version == 2:
            data = _upgrade_v2(data)
        elif version != STATE_VERSION:
            raise ValueError(f"unsupported FlowState version {version!r}")
        return from_plain(cls, {k: v for k, v in data.items() if k != "v"}, "flow")


def _upgrade_v2(old: Mapping[str, Any]) -> dict[str, Any]:
    """Version 2 in version 3's shape: no market yet, no minute levels."""
    history = old.get("history")
    first = history[0][0] if isinstance(history, list) and history else None
    return {**old, "market": "", "open_ts": None, "first_ts": first, "minutes": []}


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
