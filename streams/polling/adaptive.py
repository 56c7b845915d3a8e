"""Adaptive polling: spend each OpenD request where a poll most advances a reversal alert.

Pure logic on injected clock values, like every scheduler (see ``scheduler.py``).

What it reads. Every ``capflow.flow.v1`` record of a security gives its event time,
cumulative large net L and turnover T, R_W, the threshold theta and the regime. From
them the scheduler keeps, per security:

- the regime sequence, and from it a *pending flip*: the regime switched to the side
  opposite the one it held and has not yet held there for ``confirm`` records (the
  detector alerts on the next record that keeps it there);
- the points (t, L, T) of the last window, plus the baseline the record's own R_W was
  measured against (L - R_W, T - dT at the record's baseline_ts, else at t - W): with
  them it knows R_W's baseline for any future poll time exactly, as the flow processor
  will compute it;
- the recent rates of L and T (between its last two points);
- the minute levels (t, L) of the capital-flow series its gateway fetched (minute
  history, OpenD 3211): the flow processor folds the same rows in before the next
  snapshot, so a baseline at t - W is then the latest level at or before it from either
  source, a minute row (its T interpolated between the points) as much as a snapshot.
  A series newer than the last point is also a look between polls: the rate of L over
  its last minute or so replaces the rate between the last two points (T keeps its
  rate), so a reversal shows as soon as a series shows it, not at the next poll; and
  a series fetched shortly before a poll gives L's rate over the last minute or so
  before it, even after a single poll (a worker started after the open).

What it predicts. For a security on a side whose large-order flow now runs against
that side, it extrapolates L and T at those rates and solves for the first time t* at
which R_W would cross the opposite threshold (theta as the same share of dT as now):
the first poll at or after t* is the flip, and the next one confirms it. When the last
interval between polls is long (a flip inside it would be averaged away) or the flow
only slowed down, it first *probes*: one poll soon after, which measures the current
rate (a series' minutes measure it already: no probe after one).

Order of requests, each time the poller asks:

1. urgent: a pending flip, ``min_gap`` after its last poll (the confirming poll);
2. never polled: nothing can alert there before its first snapshot (a worker started
   after the open); those whose minute history came in first, so their first R_W is
   measured against it;
3. approach: a predicted crossing whose time has come (t* + ``pad``);
4. probe: a suspected reversal whose current rate is unknown;
5. spare budget: the security with the largest age x weight, where NEUTRAL securities
   weigh ``neutral_weight`` (< 1): they are two regime changes away from any reversal
   alert, securities on a side are one.

Floor. Every due security is polled at least every ``max_staleness`` seconds of the
poller's clock. Deadlines are ``last poll + max_staleness - 2 x interval`` (the
request leaves up to one interval after the choice, and a guard of one more absorbs
jitter between the poller's clock and OpenD's); a request is spent on anything but
the earliest deadline only if every other deadline can still be met at one request
per ``interval`` seconds (earliest deadline first over the remaining slots). That is
feasible while ``N x interval <= max_staleness - 2 x interval``; when it is not, the
scheduler degrades to round-robin order by age and logs it.

Clocks. Flow records carry event time (OpenD's updateTimestamp); the poller's clock
may run at another rate (a speeded-up simulator) or offset. The scheduler pairs each
poll with the event time of the flow that poll produced and fits event time =
offset + scale x poller time, so predictions in event time become poller times.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

INFLOW, OUTFLOW, NEUTRAL = "INFLOW", "OUTFLOW", "NEUTRAL"
_SIGN = {INFLOW: 1.0, OUTFLOW: -1.0}
_OPPOSITE = {INFLOW: OUTFLOW, OUTFLOW: INFLOW}

URGENT, APPROACH, PROBE = 0, 1, 2
_INTERVAL_SAMPLES = 15
_CLOCK_PAIRS = 64
_GUARD = 2  # request intervals between a deadline and max_staleness
_MINUTE_SPAN = 30.0  # event seconds at least between the two levels of a series' rate
_MEASURED_SPAN = 90.0  # a rate of L over at most this long (a minute row or two) is measured


@dataclass
class _Track:
    """What the scheduler knows of one security."""

    first_seen: float | None = None  # first time it was due here (poller clock)
    last_poll: float | None = None
    seq: int = 0  # order of the last poll among all polls (ties of equal times)
    awaiting: float | None = None  # poller time of a poll whose flow has not arrived yet
    # From flow records (event time):
    day: str | None = None
    last_t: float | None = None
    regime: str = NEUTRAL
    ref: str | None = None  # the side a pending flip left
    run: int = 0  # consecutive records in the current regime
    pending: bool = False
    last_alert_t: float | None = None
    points: deque[tuple[float, float, float]] = field(default_factory=deque)  # last W
    recent: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=3))
    base: tuple[float, float, float] | None = None  # (t_b, L_b, T_b) of the last record
    minutes: dict[float, float] = field(default_factory=dict)  # minute levels: t -> L
    history: bool = False  # a series of it was fetched here (its first poll can use it)
    window: float = 300.0
    theta_share: float = 0.0
    # The poll this security wants (event time) and why.
    want_event: float | None = None
    want_class: int = PROBE


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _start_day(track: _Track, day: str) -> None:
    """A flow of a new trading day: the security's regime and points start again."""
    track.day = day
    track.last_t = None
    track.regime, track.ref, track.run, track.pending = NEUTRAL, None, 0, False
    track.points.clear()
    track.recent.clear()
    # Its minutes stay: a series may come before the day's first flow (a worker started
    # after the open); an earlier day's are pruned with the points (more than 2 W old).


def _add_point(
    track: _Track, point: tuple[float, float, float], base: tuple[float, float, float]
) -> None:
    """A flow record's point and baseline; what lies too far back to be a baseline goes."""
    t = point[0]
    track.points.append(point)
    track.recent.append(point)
    while track.points and track.points[0][0] <= t - track.window:
        track.points.popleft()
    track.base = base
    horizon = t - 2 * track.window  # older minutes can no longer be a baseline
    track.minutes = {m: lv for m, lv in track.minutes.items() if m > horizon}


class Adaptive:
    """The adaptive policy; see the module docstring."""

    def __init__(
        self,
        max_staleness: float,
        *,
        interval: float | None = None,
        confirm: int = 2,
        cooldown: float = 600.0,
        min_gap: float = 3.0,
        probe_gap: float = 10.0,
        long_gap: float = 30.0,
        pad: float = 1.0,
        slowdown: float = 0.05,
        neutral_weight: float = 0.5,
    ) -> None:
        """``max_staleness`` and ``interval`` (planned seconds per request) are poller-clock
        seconds; ``min_gap``, ``probe_gap``, ``long_gap`` and ``pad`` are event seconds."""
        if not max_staleness > 0:
            raise ValueError(f"max_staleness must be > 0, got {max_staleness}")
        if interval is not None and not interval > 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        if confirm < 1:
            raise ValueError(f"confirm must be >= 1, got {confirm}")
        self.max_staleness = float(max_staleness)
        self.interval = interval
        self.confirm = confirm
        self.cooldown = cooldown
        self.min_gap = min_gap
        self.probe_gap = probe_gap
        self.long_gap = long_gap
        self.pad = pad
        self.slowdown = slowdown
        self.neutral_weight = neutral_weight
        self._tracks: dict[str, _Track] = {}
        self._last_call: float | None = None
        self._polls = 0
        self._gaps: deque[float] = deque(maxlen=_INTERVAL_SAMPLES)
        self._pairs: deque[tuple[float, float]] = deque(maxlen=_CLOCK_PAIRS)
        self.degraded = False
        self.choices: dict[str, int] = {"urgent": 0, "approach": 0, "probe": 0, "spare": 0}

    # -- clocks -------------------------------------------------------------------------

    def planned_interval(self) -> float | None:
        """Seconds per request to plan the floor with: the configured one, or slower if seen."""
        observed = sorted(self._gaps)[len(self._gaps) // 2] if len(self._gaps) >= 3 else None
        if self.interval is None:
            return observed
        return self.interval if observed is None else max(self.interval, observed)

    def _scale(self) -> float:
        """Event seconds per poller second (1 unless the pairs show otherwise)."""
        if len(self._pairs) < 2:
            return 1.0
        (o1, e1), (o2, e2) = self._pairs[0], self._pairs[-1]
        if o2 - o1 <= 0 or e2 - e1 <= 0:
            return 1.0
        return (e2 - e1) / (o2 - o1)

    def _to_poller(self, event_t: float) -> float:
        """Poller time at which event time ``event_t`` is reached."""
        if not self._pairs:
            return event_t
        own, event = self._pairs[-1]
        return own + (event_t - event) / self._scale()

    # -- the Scheduler protocol -----------------------------------------------------------

    def next(self, due: Sequence[str], now: float) -> str | None:
        if not due:
            return None
        if self._last_call is not None and now > self._last_call:
            self._gaps.append(now - self._last_call)
        self._last_call = now
        for sec in due:
            track = self._tracks.get(sec)
            if track is None:
                self._tracks[sec] = _Track(first_seen=now)
            elif track.first_seen is None:
                track.first_seen = now
        interval = self.planned_interval()
        n = len(due)
        # A relative tolerance: a request pace measured from clock differences is not exact.
        feasible = interval is not None and n * interval <= (
            self.max_staleness - _GUARD * interval
        ) * (1 + 1e-9)
        if interval is not None and feasible == self.degraded:
            self.degraded = not feasible
            if self.degraded:
                log.warning(
                    "max_staleness %.1fs cannot be met for %d securities at one request per "
                    "%.3fs: polling round-robin by age until it can",
                    self.max_staleness,
                    n,
                    interval,
                )
            else:
                log.info(
                    "max_staleness %.1fs is feasible again: adaptive polling", self.max_staleness
                )
        order = {sec: i for i, sec in enumerate(due)}
        deadline = {sec: self._deadline(sec, interval or 0.0) for sec in due}
        by_deadline = sorted(due, key=lambda s: (deadline[s], self._tracks[s].seq, order[s]))
        if not feasible or interval is None:
            return by_deadline[0]
        allowed = self._divertible([deadline[s] for s in by_deadline], by_deadline, now, interval)
        for sec, kind in self._candidates(due, now):
            if allowed[sec]:
                self.choices[kind] += 1
                return sec
        return by_deadline[0]

    def polled(self, security: str, now: float) -> None:
        track = self._tracks.get(security)
        if track is None:
            track = self._tracks[security] = _Track(first_seen=now)
        self._polls += 1
        track.last_poll, track.seq = now, self._polls
        track.awaiting = now
        track.want_event = None  # consumed; the flow of this poll sets the next one

    def observe_flow(self, security: str, flow: Mapping[str, Any]) -> None:
        track = self._tracks.get(security)
        if track is None:
            # Not polled here (yet): a standby worker or another gateway's security. Its
            # state is kept, so polling it later starts from what the flows said.
            track = self._tracks[security] = _Track()
        t = _num(flow.get("event_ts"))
        large = _num(flow.get("large_net"))
        turnover = _num(flow.get("turnover"))
        change = flow.get("change")
        r_w = _num(change.get("large")) if isinstance(change, Mapping) else None
        d_t = _num(change.get("turnover")) if isinstance(change, Mapping) else None
        theta = _num(flow.get("threshold"))
        window = _num(flow.get("window_s"))
        regime = flow.get("regime")
        day = flow.get("trading_day")
        if flow.get("baseline") == "none":
            # No R_W yet (no baseline before t - W): it still pairs the poll with its event
            # time; the regime and the baseline wait for a record that has them.
            if t is not None and track.awaiting is not None:
                self._pairs.append((track.awaiting, t))
                track.awaiting = None
            return
        if None in (t, large, turnover, r_w, d_t, theta, window) or regime not in (
            INFLOW,
            OUTFLOW,
            NEUTRAL,
        ):
            return
        assert t is not None and large is not None and turnover is not None
        assert r_w is not None and d_t is not None and theta is not None and window is not None
        if track.awaiting is not None:
            self._pairs.append((track.awaiting, t))
            track.awaiting = None
        if track.day != day:
            _start_day(track, str(day))
        elif track.last_t is not None and t <= track.last_t:
            return
        track.last_t = t
        self._fold_regime(track, str(regime), t)
        track.window = window
        track.theta_share = theta / d_t if d_t > 0 else 0.0
        # The level R_W was measured against, at its own time when the record names it.
        base_t = _num(flow.get("baseline_ts"))
        base = (base_t if base_t is not None else t - window, large - r_w, turnover - d_t)
        _add_point(track, (t, large, turnover), base)
        self._plan(track)

    def observe_minutes(
        self, security: str, trading_day: str, levels: Sequence[tuple[float, float]]
    ) -> None:
        """Minute levels of a series fetched for ``security`` (see the module docstring);
        before its first flow of the day they wait for it (no regime to act on yet)."""
        track = self._tracks.get(security)
        if track is None or (track.day is not None and trading_day < track.day):
            return
        track.history = True
        horizon = -math.inf if track.last_t is None else track.last_t - 2 * track.window
        track.minutes.update((t, large) for t, large in levels if t > horizon)
        if track.day == trading_day and track.last_t is not None:
            self._plan(track)

    def forget(self, security: str) -> None:
        """Left the watchlist: if it comes back, it starts as a new security."""
        self._tracks.pop(security, None)

    # -- policy ---------------------------------------------------------------------------

    def _fold_regime(self, track: _Track, regime: str, t: float) -> None:
        """Mirror the detector's pending/confirmed flips from the regimes it publishes."""
        if regime == track.regime:
            track.run += 1
        elif track.regime in _OPPOSITE and regime == _OPPOSITE[track.regime]:
            if track.pending and regime == track.ref:
                track.pending = False  # returned before confirmation: no alert
                track.run = self.confirm
            else:
                track.pending, track.ref, track.run = True, track.regime, 1
        else:
            track.pending, track.ref, track.run = False, None, 1
        track.regime = regime
        if track.pending and track.run >= self.confirm:
            track.pending = False
            if track.last_alert_t is None or t - track.last_alert_t >= self.cooldown:
                track.last_alert_t = t

    def _plan(self, track: _Track) -> None:
        """Set the poll this security wants next (event time), or none."""
        track.want_event = None
        assert track.last_t is not None
        if track.pending:
            track.want_event, track.want_class = track.last_t + self.min_gap, URGENT
            return
        sigma = _SIGN.get(track.regime)
        rates = self._rates(track) if sigma is not None else None
        if sigma is None or rates is None:
            return
        current, net_rate, turn_rate, span = rates
        now = current[0]
        against = sigma * net_rate < 0
        if not (against or (span > 0 and self._slowed(track, sigma))):
            return
        crossing = self._crossing(track, sigma, net_rate, turn_rate, current) if against else None
        if crossing is not None and not self._in_cooldown(track, crossing):
            track.want_event, track.want_class = crossing + self.pad, APPROACH
        if span > self.long_gap and (crossing is None or crossing > now + self.probe_gap):
            track.want_event, track.want_class = now + self.probe_gap, PROBE

    def _rates(
        self, track: _Track
    ) -> tuple[tuple[float, float, float], float, float, float] | None:
        """(t, L, T) now, the rates of L and T, and the span the rate of L was averaged
        over (0: measured by minutes of a series, no probe needed); None: unknown.

        T's rate is the last two points' (the record's window after a single point). L's
        is a series' last minute or so when it is newer than the last point, else from a
        minute level 30-90 s before the last point (if after the point before it), else
        between the last two points."""
        t1, l1, v1 = track.recent[-1]
        before = track.recent[-2] if len(track.recent) >= 2 else track.base
        if before is None or t1 <= before[0]:
            return None
        turn_rate = (v1 - before[2]) / (t1 - before[0])
        looked = self._minute_look(track, turn_rate)
        if looked is not None:
            current, net_rate = looked
            return current, net_rate, turn_rate, 0.0
        recent = [
            t
            for t in track.minutes
            if t1 - _MEASURED_SPAN <= t <= t1 - _MINUTE_SPAN
            and (len(track.recent) < 2 or t > before[0])
        ]
        if recent:
            t_m = max(recent)
            return (t1, l1, v1), (l1 - track.minutes[t_m]) / (t1 - t_m), turn_rate, 0.0
        if len(track.recent) < 2:
            return None
        return (t1, l1, v1), (l1 - before[1]) / (t1 - before[0]), turn_rate, t1 - before[0]

    def _slowed(self, track: _Track, sigma: float) -> bool:
        """Whether L's share of the turnover fell on the regime's side between the last
        three points by more than ``slowdown`` (a reversal may be starting)."""
        if len(track.recent) < 3:
            return False
        (tp, lp, vp), (t0, l0, v0), (_, l1, v1) = list(track.recent)[-3:]
        if not (v1 > v0 > vp and t0 > tp):
            return False
        before = sigma * (l0 - lp) / (v0 - vp)
        return sigma * (l1 - l0) / (v1 - v0) < before - self.slowdown

    def _minute_look(
        self, track: _Track, turn_rate: float
    ) -> tuple[tuple[float, float, float], float] | None:
        """The latest minute level when it is newer than the last point: (t, L, T) with T
        at ``turn_rate`` from the last point, and the rate of L over the last
        ``_MINUTE_SPAN`` or more of minutes; None without one."""
        assert track.last_t is not None
        newer = sorted(t for t in track.minutes if t > track.last_t)
        if not newer:
            return None
        t_m = newer[-1]
        earlier = [t for t in track.minutes if t <= t_m - _MINUTE_SPAN]
        if not earlier:
            return None
        t_p = max(earlier)
        l_m = track.minutes[t_m]
        net_rate = (l_m - track.minutes[t_p]) / (t_m - t_p)
        _, _, v_last = track.points[-1]
        return (t_m, l_m, v_last + turn_rate * (t_m - track.last_t)), net_rate

    def _in_cooldown(self, track: _Track, crossing: float) -> bool:
        """True when the flip at ``crossing`` would be confirmed inside the alert cooldown."""
        if track.last_alert_t is None:
            return False
        confirmed = crossing + (self.confirm - 1) * self.min_gap
        return confirmed - track.last_alert_t < self.cooldown

    def _crossing(
        self,
        track: _Track,
        sigma: float,
        net_rate: float,
        turn_rate: float,
        current: tuple[float, float, float],
    ) -> float | None:
        """First event time at which R_W would be on the opposite side, at the current rates,
        from ``current`` (t, L, T) on.

        The baseline of a poll at t is the last level at or before t - W: the record's own
        baseline until t - W passes the next known level (a point, or a minute level of a
        fetched series), then that level, and so on.
        """
        assert track.base is not None
        t_now, l_now, v_now = current
        k = track.theta_share
        slope = sigma * net_rate + k * turn_rate
        bases = [track.base, *self._levels(track, turn_rate)]
        starts = [t_now] + [b[0] + track.window for b in bases[1:]]
        for i, (_, l_b, v_b) in enumerate(bases):
            begin = starts[i]
            end = starts[i + 1] if i + 1 < len(starts) else math.inf
            if end <= t_now:
                continue
            begin = max(begin, t_now)
            level = sigma * (l_now - l_b) + k * (v_now - v_b)
            at_begin = level + slope * (begin - t_now)
            if at_begin <= 0:
                return begin
            if slope < 0:
                hit = t_now - level / slope
                if hit < end:
                    return hit
        return None

    @staticmethod
    def _levels(track: _Track, turn_rate: float) -> list[tuple[float, float, float]]:
        """The points and the minute levels after the record's baseline, in time order;
        a minute level's T interpolated between the points around it (from the record's
        baseline; after the last point, at the turnover rate), as the flow processor
        does."""
        assert track.base is not None
        known = [track.base, *track.points]
        times = [p[0] for p in known]
        out = list(track.points)
        for t, large in track.minutes.items():
            if t <= track.base[0] or t in times:
                continue
            i = bisect.bisect_right(times, t)
            if i >= len(known):
                t_l, _, v_l = known[-1]
                turnover = v_l + turn_rate * (t - t_l)
            else:
                (t_a, _, v_a), (t_b, _, v_b) = known[i - 1], known[i]
                turnover = v_a + (v_b - v_a) * (t - t_a) / (t_b - t_a)
            out.append((t, large, turnover))
        return sorted(out)

    def _candidates(self, due: Sequence[str], now: float) -> list[tuple[str, str]]:
        """Securities worth a request now, best first: confirming polls, never-polled
        securities, the other hot ones, then spare by weighted age."""
        scale = self._scale()
        hot: list[tuple[int, float, int, str]] = []
        spare: list[tuple[int, float, int, int, str]] = []
        for i, sec in enumerate(due):
            track = self._tracks[sec]
            if track.want_event is not None:
                want = self._to_poller(track.want_event)
                gap_ok = track.last_poll is None or (now - track.last_poll) * scale >= self.min_gap
                if want <= now and gap_ok:
                    hot.append((track.want_class, want, i, sec))
            if track.last_poll is None:
                # Never polled: nothing known yet, first; those whose minute history is
                # in before the others (the history budget fetches from the end of the
                # list, these go from its front: the two do not race for one security).
                spare.append((0, 0.0 if track.history else 1.0, 0, i, sec))
                continue
            weight = self.neutral_weight if track.regime == NEUTRAL and track.day else 1.0
            spare.append((1, -(now - track.last_poll) * weight, track.seq, i, sec))
        hot.sort()
        spare.sort()
        kinds = {URGENT: "urgent", APPROACH: "approach", PROBE: "probe"}
        ranked = [(c, sec, kinds[c]) for c, _, _, sec in hot]
        # A security never polled comes right after the confirming polls: nothing can
        # alert there before its first snapshot (a worker started after the open).
        ranked += [(URGENT if never == 0 else PROBE + 1, sec, "spare") for never, *_, sec in spare]
        return [(sec, kind) for _, sec, kind in sorted(ranked, key=lambda r: r[0])]

    # -- floor --------------------------------------------------------------------------

    def _deadline(self, security: str, interval: float) -> float:
        """Latest time to choose ``security`` so its reply still lands within max_staleness."""
        track = self._tracks[security]
        last = track.last_poll if track.last_poll is not None else track.first_seen
        assert last is not None  # next() sets first_seen of every due security
        return last + self.max_staleness - _GUARD * interval

    @staticmethod
    def _divertible(
        deadlines: list[float], by_deadline: list[str], now: float, interval: float
    ) -> dict[str, bool]:
        """Per security: may this request go to it and every other deadline still be met?

        Earliest deadline first over slots now + interval, now + 2 x interval, ...: the
        others (in deadline order) must each fit the slot they would get.
        """
        n = len(deadlines)
        # prefix[j]: all before j fit when this request goes elsewhere (they shift by one).
        prefix = [True] * (n + 1)
        for k in range(n):
            prefix[k + 1] = prefix[k] and deadlines[k] >= now + (k + 1) * interval
        # suffix[j]: all after j fit at their own slot (j's slot is freed for them).
        suffix = [True] * (n + 1)
        for k in range(n - 1, -1, -1):
            suffix[k] = suffix[k + 1] and deadlines[k] >= now + k * interval
        return {sec: prefix[j] and suffix[j + 1] for j, sec in enumerate(by_deadline)}

    # -- introspection (metrics, tests) ---------------------------------------------------

    def pending(self) -> list[str]:
        """Securities with a flip waiting for confirmation."""
        return [s for s, t in self._tracks.items() if t.pending]
