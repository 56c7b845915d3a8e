"""Minute history folded into a security's state: warm start and gap fill.

OpenD's capital flow (protocol 3211) gives, for one security in one request, the day's
cumulative net per class at every trading minute since the open. The poller publishes
each series it fetches on ``capflow.capitalflow.v1`` and stamps the snapshots it polls
after that with the series' receive time; the flow processor folds a series in right
before the first snapshot that names it, whichever of the two topics Kafka delivers
first (:class:`Inbox`), so a replay of the topics folds it at the same place.

Folded minute rows are levels beside the snapshot levels (streams.processing.flow). When
a series comes to a state with points the detector could not step (they had no baseline:
a worker that started after the open, a hole in polling), or with the snapshot that ends
a hole (its series fetched before it), :func:`replay` runs the regime logic again over
what the series tells: each complete minute before the first such
snapshot is a point (from the open for a state that has stepped nothing today, inside
the hole otherwise), then each such snapshot with its R_W measured against the filled
history. That sets the regime, the last confirmed side and the cooldown clock as of now.
A reversal confirmed before the state's first snapshot of the day is the past (another
worker may have sent it): it starts the cooldown but is not published. One confirmed
later, inside a hole, is published once, with the event time it was confirmed at and
``found_in_history``.

Pure logic, no Kafka, like the rest of streams.processing.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from streams.processing.detector import Alert, DetectorState
from streams.processing.flow import (
    FlowPoint,
    FlowState,
    Level,
    MinuteLevel,
    Resolved,
    Skip,
    Snapshot,
    choose_baseline,
    make_point,
    minute_as_level,
    place_minutes,
    too_old,
)
from streams.processing.thresholds import DetectorParams

MAX_WAITING = 256  # snapshots held for a series that does not come, before going on without


@dataclass(frozen=True)
class MinuteSeries:
    """One security's capital flow of one day as the flow processor folds it in.

    ``rows`` are OpenD's cumulative nets per class at each row time, in time order; a
    row later than ``last_valid_ts`` is the minute in progress (its value is as of
    ``last_valid_ts``). ``received_ms`` is when the poller received it: the snapshots
    polled after it name it by that.
    """

    security: str
    market: str
    trading_day: str
    received_ms: int
    last_valid_ts: float | None
    rows: tuple[MinuteLevel, ...]

    def complete(self) -> list[MinuteLevel]:
        """The rows of minutes that had ended when OpenD answered (each a replay point)."""
        last = self.last_valid_ts
        return [r for r in self.rows if last is None or r.ts <= last]


@dataclass(frozen=True)
class Waiting:
    """A snapshot that came before the series it names (``ref_ms``)."""

    ref_ms: int
    snapshot: Snapshot


@dataclass(frozen=True)
class Mark:
    """A series held for the snapshot that names it, without its complete rows (the
    inbox keeps those once for all held series: OpenD's rows of minutes that have ended
    do not change, so each later series repeats the earlier ones' rows)."""

    received_ms: int
    security: str
    market: str
    trading_day: str
    first_ts: float  # its first row (the open), so rows of another day are told apart
    last_valid_ts: float | None
    partial: tuple[MinuteLevel, ...]  # rows after last_valid_ts: the minute in progress


@dataclass
class Inbox:
    """The order the poller meant, whatever order the two topics arrive in.

    A snapshot names the latest series published before it (``ref_ms``, 0: none). A
    snapshot whose series has not come yet waits here, and so does every snapshot
    after it; a series that came before its snapshot is held here too. Topic partitions
    keep their own order, so once a series has been seen every earlier one has too:
    a snapshot goes on when its series (or a later one) has been seen, or when
    ``MAX_WAITING`` snapshots wait (a series lost for good).
    """

    seen_ms: int = 0  # the latest series received (folded, held or unusable)
    folded_ms: int = 0  # the latest series folded in (or given up on)
    rows: list[MinuteLevel] = field(default_factory=list)  # complete rows of held series
    marks: list[Mark] = field(default_factory=list)  # the held series, oldest first
    waiting: list[Waiting] = field(default_factory=list)
    # The series folded last, kept until the next accepted snapshot has replayed it.
    replay: MinuteSeries | None = None
    folded: int = 0  # series folded in, for metrics

    def admit(self, snapshot: Snapshot, ref_ms: int) -> list[Waiting]:
        """A snapshot arrived: the snapshots that may be processed now, in order."""
        if self.waiting or ref_ms > self.seen_ms:
            self.waiting.append(Waiting(ref_ms, snapshot))
            return self._release(force=len(self.waiting) > MAX_WAITING)
        return [Waiting(ref_ms, snapshot)]

    def receive(self, series: MinuteSeries) -> list[Waiting]:
        """A series arrived: the waiting snapshots it lets go on."""
        if series.received_ms <= self.seen_ms:
            return []  # delivered again, or older than one already seen
        self.seen_ms = series.received_ms
        complete = series.complete()
        if series.rows:
            self.marks.append(
                Mark(
                    series.received_ms,
                    series.security,
                    series.market,
                    series.trading_day,
                    series.rows[0].ts,
                    series.last_valid_ts,
                    series.rows[len(complete) :],
                )
            )
            merged = {r.ts: r for r in self.rows}
            merged.update((r.ts, r) for r in complete)
            self.rows = [merged[ts] for ts in sorted(merged)]
        return self._release()

    def unusable(self, received_ms: int) -> list[Waiting]:
        """A series that was dead-lettered: the snapshots naming it go on without it."""
        self.seen_ms = max(self.seen_ms, received_ms)
        return self._release()

    def _release(self, force: bool = False) -> list[Waiting]:
        out: list[Waiting] = []
        while self.waiting and (force or self.waiting[0].ref_ms <= self.seen_ms):
            out.append(self.waiting.pop(0))
        return out

    def take(self, ref_ms: int) -> MinuteSeries | None:
        """The series to fold before a snapshot naming ``ref_ms``: that one (or the latest
        before it), once; None when it is folded already or never came."""
        if ref_ms <= self.folded_ms:
            return None
        self.folded_ms = ref_ms
        chosen = None
        for mark in self.marks:
            if mark.received_ms <= ref_ms:
                chosen = mark
        self.marks = [m for m in self.marks if m.received_ms > ref_ms]
        series = None if chosen is None else self._series(chosen)
        keep = min((m.first_ts for m in self.marks), default=None)
        self.rows = [] if keep is None else [r for r in self.rows if r.ts >= keep]
        if series is not None:
            self.folded += 1
            self.replay = series
        return series

    def _series(self, mark: Mark) -> MinuteSeries:
        last = mark.last_valid_ts
        rows = [r for r in self.rows if r.ts >= mark.first_ts and (last is None or r.ts <= last)]
        return MinuteSeries(
            mark.security,
            mark.market,
            mark.trading_day,
            mark.received_ms,
            last,
            (*rows, *mark.partial),
        )


def fold_series(flow: FlowState, series: MinuteSeries) -> bool:
    """The series' rows as minute levels of ``flow`` (False: an earlier day, ignored)."""
    return flow.fold_minutes(
        series.market, series.trading_day, list(series.rows), series.last_valid_ts
    )


class _Levels:
    """Every level a replay can use, sorted: the state's snapshot levels (the current
    snapshot last) and the series' minute levels with the state's own."""

    def __init__(self, flow: FlowState, series: MinuteSeries) -> None:
        self.snaps: list[Level] = list(flow.history)
        self.snap_ts = [lv.ts for lv in self.snaps]
        merged = {m.ts: m for m in flow.minutes}
        placed = place_minutes(series.rows, series.last_valid_ts, flow.net_offsets())
        merged.update((m.ts, m) for m in placed)
        self.minutes = [merged[ts] for ts in sorted(merged)]
        self.minute_ts = sorted(merged)
        self.open_ts = flow.open_ts
        self.sessions = flow.sessions
        self.window = flow.window

    def around(self, t: float) -> tuple[Level | None, Level]:
        """The latest snapshot level at or before t and the earliest one after it."""
        i = bisect.bisect_right(self.snap_ts, t)
        before = self.snaps[i - 1] if i else None
        after = self.snaps[min(i, len(self.snaps) - 1)]
        return before, after

    def minute_level(self, minute: MinuteLevel) -> Level:
        before, after = self.around(minute.ts)
        return minute_as_level(minute, before, after, self.open_ts, self.sessions)

    def baseline(self, t: float) -> Resolved:
        cutoff = t - self.window
        before, after = self.around(cutoff)
        i = bisect.bisect_right(self.minute_ts, cutoff)
        minute = self.minutes[i - 1] if i else None
        return choose_baseline(
            cutoff, before, after, minute, self.open_ts, self.sessions, self.window
        )


def replay(
    flow: FlowState,
    detector: DetectorState,
    series: MinuteSeries,
    params: DetectorParams,
    security: str,
) -> list[Alert]:
    """Run the detector over the points history makes steppable (see the module
    docstring); the alerts to publish. Call it after the series is folded and the
    current snapshot is in ``flow`` (its level last), before stepping that snapshot."""
    day = flow.trading_day
    if day is None or series.trading_day != day or not flow.history:
        return []
    since = detector.stepped_today(day)
    earlier = list(flow.history)[:-1]
    unstepped = [lv for lv in earlier if since is None or lv.ts > since]
    now = flow.history[-1].ts
    if (
        since is not None
        and not unstepped
        and not too_old(since, now - flow.window, flow.sessions, flow.window)
    ):
        return []  # every snapshot of the day has been stepped, none after a hole
    levels = _Levels(flow, series)
    end = unstepped[0].ts if unstepped else flow.history[-1].ts
    minutes = [
        levels.minute_level(m)
        for m in place_minutes(series.complete(), None, flow.net_offsets())
        if (since is None or m.ts > since) and m.ts < end
    ]
    first = flow.first_ts
    alerts: list[Alert] = []
    for level in [*minutes, *unstepped]:
        point = _point(flow, security, level, levels.baseline(level.ts))
        if not point.has_change:
            continue
        alert = detector.step(point, params)
        if alert is not None and first is not None and level.ts >= first:
            alerts.append(replace(alert, found_in_history=True))
    return alerts


def _point(flow: FlowState, security: str, level: Level, base: Resolved) -> FlowPoint:
    return make_point(
        security, flow.market, flow.trading_day or "", flow.window, level, base, in_window=0
    )


@dataclass
class Step:
    """What one snapshot did to a flow state and the detectors it feeds (one per set of
    parameters: the worker has one, a backtest many)."""

    point: FlowPoint | Skip
    found: list[list[Alert]]  # per detector: reversals minute history found, to publish
    alerts: list[Alert | None]  # per detector: the reversal this snapshot confirmed


def advance(
    flow: FlowState,
    inbox: Inbox,
    waiting: Waiting,
    detectors: Sequence[tuple[DetectorState, DetectorParams]],
) -> Step:
    """One snapshot the inbox let through: the series it names folded in first, then
    the snapshot, then (after a fold) the replay of what history makes steppable,
    then the detectors' step on the snapshot's point."""
    series = inbox.take(waiting.ref_ms)
    if series is not None:
        fold_series(flow, series)
    snap = waiting.snapshot
    point = flow.fold(snap)
    if isinstance(point, Skip):
        return Step(point, [], [])  # duplicate or stale: only counted
    found: list[list[Alert]] = [[] for _ in detectors]
    if inbox.replay is not None:
        found = [
            replay(flow, det, inbox.replay, params, snap.security) for det, params in detectors
        ]
        inbox.replay = None
    return Step(point, found, [det.step(point, params) for det, params in detectors])
