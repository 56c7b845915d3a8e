"""Reversal detector: regimes with hysteresis over R_W, confirmed flips become alerts.

Pure logic, no Kafka. One :class:`DetectorState` per security; :meth:`DetectorState.step`
takes the security's :class:`FlowPoint` s in event-time order.

Rules (DESIGN.md "Definitions", plus the cases it leaves open):

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
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from streams.processing.flow import FlowPoint
from streams.processing.thresholds import DetectorParams

STATE_VERSION = 1
INFLOW_TO_OUTFLOW = "inflow_to_outflow"
OUTFLOW_TO_INFLOW = "outflow_to_inflow"


class Regime(StrEnum):
    NEUTRAL = "NEUTRAL"
    INFLOW = "INFLOW"
    OUTFLOW = "OUTFLOW"


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
    direction: str  # "inflow_to_outflow" | "outflow_to_inflow"
    event_ts: float  # the confirming point
    r_w: float
    threshold: float
    window_s: float
    previous_regime: str
    previous_peak: float
    previous_regime_started_ts: float
    regime_started_ts: float  # the flip
    large_net: float
    turnover: float
    confirm: int

    @property
    def alert_id(self) -> str:
        return make_alert_id(
            self.security, self.trading_day, self.direction, self.regime_started_ts
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"alert_id": self.alert_id}
        out.update({f.name: getattr(self, f.name) for f in fields(self)})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def _extreme(regime: Regime, peak: float, r_w: float) -> float:
    """Peak of a regime: max R_W for INFLOW, min for OUTFLOW."""
    if regime is Regime.INFLOW:
        return max(peak, r_w)
    if regime is Regime.OUTFLOW:
        return min(peak, r_w)
    return peak


_OPPOSITE = {Regime.INFLOW: Regime.OUTFLOW, Regime.OUTFLOW: Regime.INFLOW}


class DetectorState:
    """Regime state of one security for its current trading day."""

    def __init__(self) -> None:
        self.trading_day: str | None = None
        self.last_ts: float | None = None
        self.last_alert_ts: float | None = None
        self.threshold = 0.0  # theta of the last point, published on the flow topic
        self.alerts = 0
        self.suppressed = 0  # confirmed flips silenced by the cooldown
        self.cancelled = 0  # pending flips that returned before confirmation
        self._reset_regime()

    def _reset_regime(self) -> None:
        self.regime = Regime.NEUTRAL
        self.started_ts: float | None = None
        self.peak = 0.0
        self.held = 0
        self.pending = False
        self.prev_regime = Regime.NEUTRAL
        self.prev_started_ts: float | None = None
        self.prev_peak = 0.0
        self.prev_held = 0

    def _enter(self, regime: Regime, t: float, r_w: float) -> None:
        self.regime = regime
        self.started_ts = t
        self.peak = r_w
        self.held = 1

    def step(self, point: FlowPoint, params: DetectorParams) -> Alert | None:
        """Fold one point in; an alert when it confirms a reversal outside the cooldown."""
        if self.trading_day is None or point.trading_day > self.trading_day:
            self.trading_day = point.trading_day
            self.last_ts = None
            self._reset_regime()
        elif point.trading_day < self.trading_day:
            return None
        t = point.event_ts
        if self.last_ts is not None and t < self.last_ts:
            return None
        self.last_ts = t

        theta = threshold(point, params)
        self.threshold = theta
        r_w = point.change_large
        side = side_of(r_w, theta)

        if self.regime is Regime.NEUTRAL:
            if side is not None:
                self._enter(side, t, r_w)
            return None

        if side is _OPPOSITE[self.regime]:
            if self.pending:
                # Returned before confirmation: undo the flip, keep the older regime.
                self.regime = self.prev_regime
                self.started_ts = self.prev_started_ts
                self.peak = _extreme(self.regime, self.prev_peak, r_w)
                self.held = self.prev_held + self.held + 1
                self.pending = False
                self.prev_regime = Regime.NEUTRAL
                self.prev_started_ts = None
                self.prev_peak = 0.0
                self.prev_held = 0
                self.cancelled += 1
                return None
            self.prev_regime = self.regime
            self.prev_started_ts = self.started_ts
            self.prev_peak = self.peak
            self.prev_held = self.held
            self._enter(side, t, r_w)
            self.pending = True
        else:
            self.held += 1
            self.peak = _extreme(self.regime, self.peak, r_w)

        if not (self.pending and self.held >= params.confirm):
            return None
        self.pending = False
        if self.last_alert_ts is not None and t - self.last_alert_ts < params.cooldown:
            self.suppressed += 1
            return None
        self.last_alert_ts = t
        self.alerts += 1
        assert self.started_ts is not None and self.prev_started_ts is not None
        return Alert(
            security=point.security,
            market=point.market,
            trading_day=point.trading_day,
            direction=(
                INFLOW_TO_OUTFLOW if self.prev_regime is Regime.INFLOW else OUTFLOW_TO_INFLOW
            ),
            event_ts=t,
            r_w=r_w,
            threshold=theta,
            window_s=point.window_s,
            previous_regime=self.prev_regime.value,
            previous_peak=self.prev_peak,
            previous_regime_started_ts=self.prev_started_ts,
            regime_started_ts=self.started_ts,
            large_net=point.large_net,
            turnover=point.turnover,
            confirm=params.confirm,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy of the state (for a Faust table value)."""
        return {
            "v": STATE_VERSION,
            "trading_day": self.trading_day,
            "last_ts": self.last_ts,
            "last_alert_ts": self.last_alert_ts,
            "threshold": self.threshold,
            "regime": self.regime.value,
            "started_ts": self.started_ts,
            "peak": self.peak,
            "held": self.held,
            "pending": self.pending,
            "prev_regime": self.prev_regime.value,
            "prev_started_ts": self.prev_started_ts,
            "prev_peak": self.prev_peak,
            "prev_held": self.prev_held,
            "alerts": self.alerts,
            "suppressed": self.suppressed,
            "cancelled": self.cancelled,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorState:
        """Restore what :meth:`to_dict` wrote; the result behaves identically."""
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported DetectorState version {data.get('v')!r}")

        def opt(key: str) -> float | None:
            value = data[key]
            return None if value is None else float(value)

        state = cls()
        state.trading_day = data["trading_day"]
        state.last_ts = opt("last_ts")
        state.last_alert_ts = opt("last_alert_ts")
        state.threshold = float(data["threshold"])
        state.regime = Regime(data["regime"])
        state.started_ts = opt("started_ts")
        state.peak = float(data["peak"])
        state.held = int(data["held"])
        state.pending = bool(data["pending"])
        state.prev_regime = Regime(data["prev_regime"])
        state.prev_started_ts = opt("prev_started_ts")
        state.prev_peak = float(data["prev_peak"])
        state.prev_held = int(data["prev_held"])
        state.alerts = int(data["alerts"])
        state.suppressed = int(data["suppressed"])
        state.cancelled = int(data["cancelled"])
        return state
