"""Per-security processing step, free of Faust: decode, update state, build outputs.

The agent in ``app.py`` is a thin loop around ``SecurityProcessor``; keeping the
step pure (state blob in, state blob and payloads out) lets unit tests and the
replay benchmark run it without a broker.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson
from google.protobuf.message import DecodeError as ProtobufDecodeError

from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.processing.detector import DetectorState
from streams.processing.events import alert_payload, flow_payload
from streams.processing.flow import FlowState, Snapshot
from streams.processing.thresholds import ThresholdConfig


class DecodeError(ValueError):
    """A record on the snapshot topic is not a usable DistributionSnapshot."""


@dataclass(frozen=True)
class Outcome:
    """What one snapshot produced: new state, and the flow/alert records to publish."""

    result: str  # "flow", "duplicate" (or stale: nothing changes)
    state: bytes | None
    flow: bytes | None = None
    alert: bytes | None = None
    direction: str | None = None


def snapshot_from_record(msg: DistributionSnapshot) -> Snapshot:
    return Snapshot(
        security=msg.security,
        market=msg.market,
        trading_day=msg.trading_day,
        event_ts=msg.update_timestamp,
        in_super=msg.capital_in_super,
        in_big=msg.capital_in_big,
        in_mid=msg.capital_in_mid,
        in_small=msg.capital_in_small,
        out_super=msg.capital_out_super,
        out_big=msg.capital_out_big,
        out_mid=msg.capital_out_mid,
        out_small=msg.capital_out_small,
    )


class SecurityProcessor:
    """Flow state + detector for one security at a time, parameterised per security."""

    def __init__(self, thresholds: ThresholdConfig) -> None:
        self.thresholds = thresholds

    def decode(self, key: bytes | None, value: bytes | None) -> Snapshot:
        if not value:
            raise DecodeError("empty record value")
        try:
            msg = DistributionSnapshot.FromString(value)
        except (ProtobufDecodeError, ValueError) as exc:
            raise DecodeError(f"not a capflow.v1.DistributionSnapshot: {exc}") from exc
        if not msg.security or not msg.trading_day:
            raise DecodeError("snapshot without security or trading_day")
        if key is not None and key.decode(errors="replace") != msg.security:
            raise DecodeError(f"key {key!r} does not match security {msg.security!r}")
        if msg.update_timestamp <= 0:
            raise DecodeError(f"snapshot of {msg.security} without updateTimestamp")
        try:
            return snapshot_from_record(msg)
        except ValueError as exc:  # malformed trading_day, NaN/inf amounts or timestamp
            raise DecodeError(f"snapshot of {msg.security} is not usable: {exc}") from exc

    @staticmethod
    def _load(blob: bytes | None, window: float) -> tuple[FlowState, DetectorState]:
        if blob is None:
            return FlowState(window=window), DetectorState()
        data = orjson.loads(blob)
        return FlowState.from_dict(data["flow"]), DetectorState.from_dict(data["detector"])

    def process(self, blob: bytes | None, snap: Snapshot) -> Outcome:
        flow, detector = self.load(blob, snap.security)
        outcome = self.step(flow, detector, snap)
        return replace(outcome, state=self._dump(flow, detector))

    def load(self, blob: bytes | None, security: str) -> tuple[FlowState, DetectorState]:
        """The stored state of ``security`` as objects (fresh ones for no blob)."""
        return self._load(blob, self.thresholds.for_security(security).window)

    def step(self, flow: FlowState, detector: DetectorState, snap: Snapshot) -> Outcome:
        """Fold one snapshot into state objects (changed in place); ``state`` stays None.

        The worker's batches keep the objects of a security across its records and
        store them once per batch; ``process`` is this step with the JSON in and out.
        """
        params = self.thresholds.for_security(snap.security)
        point = flow.update(snap)
        if point is None:
            # Duplicate or stale: the state may have counted it, nothing is published.
            return Outcome("duplicate", None)
        alert = detector.step(point, params)
        return Outcome(
            "flow",
            None,
            flow=flow_payload(point, detector.regime, detector.threshold),
            alert=alert_payload(alert) if alert is not None else None,
            direction=alert.direction if alert is not None else None,
        )

    @staticmethod
    def dump(flow: FlowState, detector: DetectorState) -> bytes:
        """State objects as the table's blob (what ``process`` returns as ``state``)."""
        return SecurityProcessor._dump(flow, detector)

    @staticmethod
    def _dump(flow: FlowState, detector: DetectorState) -> bytes:
        return orjson.dumps({"flow": flow.to_dict(), "detector": detector.to_dict()})

    @staticmethod
    def describe(blob: bytes) -> dict[str, Any]:
        """The stored state as JSON for the web view."""
        data: dict[str, Any] = orjson.loads(blob)
        return data
