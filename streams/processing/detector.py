"""Reversal detector: regimes with hysteresis over R_W, confirmed flips become alerts.

Pure logic, no Kafka. One :class:`DetectorState` per security; :meth:`DetectorState.step`
takes the security's :class:`FlowPoint` s in event-time order. The rules are the
definitions users read in docs/definitions.md (regimes, confirm, cooldown); in short:

- theta(i) = max(theta_abs, theta_rel * dT).
- A point is on the INFLOW side when R_W > 0 and R_W >= theta, on the OUTFLOW side
  when R_W < 0 and R_W <= -theta. A zero R_W is on neither side, so with theta == 0
  a flat window never enters or changes a regime.
- NEUTRAL enters the side of the first point that is on one. A regime holds until a
  point is on the opposite side (hysteresis); points inside the band keep it.
- A flip INFLOW <-> OUTFLOW is *pending* until the new regime has held for
  ``confirm`` consecutive points (the flip point counts as one; points in the band
  count, because the regime still holds). Then it is confirmed and alerts unless an
  alert was emitted less than ``cooldown`` seconds of event time before; a flip
  suppressed by the cooldown never alerts later.
- A pending flip that sees the opposite side again before confirmation is cancelled:
  the regime it left is restored with its original start time and peak (extended by
  the current R_W), and no alert is emitted, neither for the flip nor for the return.
- Entering a side from NEUTRAL is never a reversal.
- A new trading day resets to NEUTRAL. The cooldown clock is event time and is kept.
- Points older than the last one (or of an older day) are ignored.
- A point without a baseline (no R_W, see streams.processing.flow) changes nothing but
  the day: no regime change and no alert can come from it, and it does not count as
  stepped (minute history may step the time it stands for later, streams.processing.backfill).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from streams.processing.flow import FlowPoint
from streams.processing.stored import from_plain, to_plain
from streams.processing.thresholds import DetectorParams

STATE_VERSION = 2


class Regime(StrEnum):
    """The hysteresis regime of a security's R_W."""

    NEUTRAL = "NEUTRAL"
    INFLOW = "INFLOW"
    OUTFLOW = "OUTFLOW"


class Direction(StrEnum):
    """Which way large-order flow reversed; the values are the alert payload's."""

    INFLOW_TO_OUTFLOW = "inflow_to_outflow"
    OUTFLOW_TO_INFLOW = "outflow_to_inflow"

    @classmethod
    def leaving(cls, side: Regime) -> Direction:
        """The reversal that leaves ``side`` (INFLOW or OUTFLOW)."""
        if side is Regime.INFLOW:
            return cls.INFLOW_TO_OUTFLOW
        if side is Regime.OUTFLOW:
            return cls.OUTFLOW_TO_INFLOW
        raise ValueError("leaving NEUTRAL is not a reversal")


INFLOW_TO_OUTFLOW = Direction.INFLOW_TO_OUTFLOW
OUTFLOW_TO_INFLOW = Direction.OUTFLOW_TO_INFLOW
_OPPOSITE = {Regime.INFLOW: Regime.OUTFLOW, Regime.OUTFLOW: Regime.INFLOW}


def threshold(point: FlowPoint, params: DetectorParams) -> float:
    """theta(i) = max(theta_abs, theta_rel * dT)."""
    return max(params.theta_abs, params.theta_rel * point.change_turnover)


def side_of(r_w: float, theta: float) -> Regime | None:
    """The side R_W is on for threshold theta, None inside the band (and for R_W == 0)."""
    if r_w > 0 and r_w >= theta:
        return Regime.INFLOW
    if r_w < 0 and r_w <= -theta:
        return Regime.OUTFLOW
    return None


def make_alert_id(security: str, trading_day: str, direction: str, regime_started_ts: float) -> str:
    """Deterministic id: the same flip of the same security-day always gets the same id.

    The flip time (not the confirmation time) is used, so sinks can deduplicate
    alerts re-emitted after a restart or replay.
    """
    canonical = f"{security}|{trading_day}|{direction}|{float(regime_started_ts)!r}"
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Alert:
    """A confirmed reversal of large-order flow."""

    security: str
    market: str
    trading_day: str
    direction: Direction
    event_ts: float  # the confirming point
    r_w: float
    threshold: float
    window_s: float
    previous_regime: Regime
    previous_peak: float
    previous_regime_started_ts: float
    regime_started_ts: float  # the flip
    large_net: float
    turnover: float
    confirm: int
    found_in_history: bool = False  # confirmed at a minute of the day's capital flow or a
    # snapshot re-read with it, when history filled a hole (streams.processing.backfill)

    def __post_init__(self) -> None:
        # Accept the payload's strings; a value outside the enums is an error here.
        object.__setattr__(self, "direction", Direction(self.direction))
        object.__setattr__(self, "previous_regime", Regime(self.previous_regime))

    @property
    def alert_id(self) -> str:
        return make_alert_id(
            self.security, self.trading_day, self.direction, self.regime_started_ts
        )

    def to_dict(self) -> dict[str, Any]:
        """The alert payload's ``data`` fields: ``alert_id`` first, then every field."""
        return {"alert_id": self.alert_id, **to_plain(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """From :meth:`to_dict` or a payload's ``data`` (derived keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return from_plain(cls, {k: v for k, v in data.items() if k in names}, "alert")


def _extreme(side: Regime, peak: float, r_w: float) -> float:
    """Peak of a regime: max R_W for INFLOW, min for OUTFLOW."""
    return max(peak, r_w) if side is Regime.INFLOW else min(peak, r_w)


@dataclass(frozen=True)
class RegimeSpan:
    """One regime on one side: when it began, its extreme R_W, and the points it held."""

    side: Regime  # INFLOW or OUTFLOW
    started_ts: float
    peak: float  # max R_W for INFLOW, min for OUTFLOW
    held: int  # points in the regime, the first included

    def __post_init__(self) -> None:
        if self.side is Regime.NEUTRAL or self.held < 1:
            raise ValueError(f"a regime span is INFLOW or OUTFLOW and holds >= 1 point: {self}")

    @classmethod
    def begin(cls, side: Regime, t: float, r_w: float) -> RegimeSpan:
        """A regime entered at t by a point with R_W r_w (that point is the first held)."""
        return cls(side, t, r_w, 1)

    def extended(self, r_w: float) -> RegimeSpan:
        """The regime after one more point that keeps it (on its side or in the band)."""
        return RegimeSpan(
            self.side, self.started_ts, _extreme(self.side, self.peak, r_w), self.held + 1
        )

    def resumed(self, blip: RegimeSpan, r_w: float) -> RegimeSpan:
        """This regime again after a flip ``blip`` that returned at R_W r_w unconfirmed.

        It keeps its start time; the blip's points and the return count as held.
        """
        peak = _extreme(self.side, self.peak, r_w)
        return RegimeSpan(self.side, self.started_ts, peak, self.held + blip.held + 1)


@dataclass
class DetectorState:
    """Regime state of one security for its current trading day."""

    trading_day: str | None = None
    last_ts: float | None = None
    last_alert_ts: float | None = None  # kept across days: the cooldown is event time
    threshold: float = 0.0  # theta of the last point, published on the flow topic
    current: RegimeSpan | None = None  # None while NEUTRAL
    flipped_from: RegimeSpan | None = None  # the regime a pending flip left (None: none)
    alerts: int = 0
    suppressed: int = 0  # confirmed flips silenced by the cooldown
    cancelled: int = 0  # pending flips that returned before confirmation

    @property
    def regime(self) -> Regime:
        return Regime.NEUTRAL if self.current is None else self.current.side

    @property
    def pending(self) -> bool:
        """Whether a flip waits for confirmation."""
        return self.flipped_from is not None

    def step(self, point: FlowPoint, params: DetectorParams) -> Alert | None:
        """Fold one point in; an alert when it confirms a reversal outside the cooldown."""
        if not point.has_change:
            self._new_day(point.trading_day)  # no R_W: only a new day can change anything
            return None
        if not self._admit(point):
            return None
        t, r_w = point.event_ts, point.change_large
        self.threshold = theta = threshold(point, params)
        side = side_of(r_w, theta)
        if self.current is None:
            if side is not None:
                self.current = RegimeSpan.begin(side, t, r_w)
            return None
        if side is _OPPOSITE[self.current.side]:
            if self.flipped_from is not None:
                # Returned before confirmation: undo the flip, keep the older regime.
                self.current = self.flipped_from.resumed(self.current, r_w)
                self.flipped_from = None
                self.cancelled += 1
                return None
            self.flipped_from = self.current
            self.current = RegimeSpan.begin(side, t, r_w)
        else:
            self.current = self.current.extended(r_w)
        if self.flipped_from is None or self.current.held < params.confirm:
            return None
        return self._confirm(point, params, theta)

    def _new_day(self, day: str) -> bool:
        """Start ``day`` if it is later than the current one; False for an earlier day."""
        if self.trading_day is None or day > self.trading_day:
            self.trading_day = day
            self.last_ts = None
            self.current = self.flipped_from = None
        return day >= self.trading_day

    def stepped_today(self, day: str) -> float | None:
        """Event time of the last point stepped on ``day`` (None: none yet)."""
        return self.last_ts if self.trading_day == day else None

    def _admit(self, point: FlowPoint) -> bool:
        """Day change (back to NEUTRAL) and ordering: False for a point to ignore."""
        if not self._new_day(point.trading_day):
            return False
        if self.last_ts is not None and point.event_ts < self.last_ts:
            return False
        self.last_ts = point.event_ts
        return True

    def _confirm(self, point: FlowPoint, params: DetectorParams, theta: float) -> Alert | None:
        """The pending flip has held ``confirm`` points: an alert unless in the cooldown."""
        left, span = self.flipped_from, self.current
        assert left is not None and span is not None
        self.flipped_from = None
        t = point.event_ts
        if self.last_alert_ts is not None and t - self.last_alert_ts < params.cooldown:
            self.suppressed += 1
            return None
        self.last_alert_ts = t
        self.alerts += 1
        return Alert(
            security=point.security,
            market=point.market,
            trading_day=point.trading_day,
            direction=Direction.leaving(left.side),
            event_ts=t,
            r_w=point.change_large,
            threshold=theta,
            window_s=point.window_s,
            previous_regime=left.side,
            previous_peak=left.peak,
            previous_regime_started_ts=left.started_ts,
            regime_started_ts=span.started_ts,
            large_net=point.large_net,
            turnover=point.turnover,
            confirm=params.confirm,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (for a Faust table value); ``regime`` is derived, for readers."""
        return {"v": STATE_VERSION, "regime": self.regime.value, **to_plain(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetectorState:
        """Restore what :meth:`to_dict` wrote, or a version 1 state; behaves identically."""
        version = data.get("v")
        if version == 1:
            data = _upgrade_v1(data)
        elif version != STATE_VERSION:
            raise ValueError(f"unsupported DetectorState version {version!r}")
        body = {k: v for k, v in data.items() if k not in ("v", "regime")}
        state = from_plain(cls, body, "detector")
        if data.get("regime", state.regime) != state.regime:
            raise ValueError(f"detector: regime {data['regime']!r} contradicts its span")
        return state


def _upgrade_v1(old: Mapping[str, Any]) -> dict[str, Any]:
    """Version 1 (changelogs still hold it) in version 2's shape.

    Version 1 kept the spans flat: ``regime, started_ts, peak, held`` and mirrored
    ``prev_*`` fields that only meant something while ``pending`` was true.
    """

    def span(prefix: str) -> dict[str, Any]:
        keys = {"side": "regime", "started_ts": "started_ts", "peak": "peak", "held": "held"}
        return {new: old[prefix + key] for new, key in keys.items()}

    same = ("trading_day", "last_ts", "last_alert_ts", "threshold")
    counters = ("alerts", "suppressed", "cancelled")
    try:
        return {
            "v": STATE_VERSION,
            **{key: old[key] for key in same},
            "current": None if old["regime"] == Regime.NEUTRAL else span(""),
            "flipped_from": span("prev_") if old["pending"] else None,
            **{key: old[key] for key in counters},
        }
    except KeyError as exc:
        raise ValueError(f"detector (version 1): missing {exc}") from None
