"""Per-security processing step, free of Faust: decode, update state, build outputs.

The agent in ``app.py`` is a thin loop around ``SecurityProcessor``; keeping the
step pure (state blob in, state blob and payloads out) lets unit tests and the
replay benchmark run it without a broker. Decoding validates every record
(streams.domain.validation): an invalid one is a DecodeError, dead-lettered with the
reason by the agent, and never reaches the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import orjson
from google.protobuf.message import DecodeError as ProtobufDecodeError

from streams.domain.snapshot_record import record_amounts
from streams.domain.validation import AMOUNT_FIELDS, InvalidSnapshot, validate_snapshot
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.processing.detector import DetectorState
from streams.processing.events import alert_payload, flow_payload
from streams.processing.flow import FlowState, Skip, Snapshot
from streams.processing.thresholds import ThresholdConfig


class DecodeError(ValueError):
    """A record on the snapshot topic is not a usable DistributionSnapshot."""


class Result(StrEnum):
    """What became of a snapshot (the ``result`` label of capflow_snapshots_processed)."""

    FLOW = "flow"  # accepted: a flow record (and maybe an alert) is published
    DUPLICATE = "duplicate"  # same event time and amounts as the last accepted one
    STALE = "stale"  # older than the last accepted one (late): dropped


@dataclass(frozen=True)
class Outcome:
    """What one snapshot produced: new state, and the flow/alert records to publish."""

    result: Result
    state: bytes | None
    flow: bytes | None = None
    alert: bytes | None = None
    direction: str | None = None


def snapshot_from_record(
    msg: DistributionSnapshot, amounts: Mapping[str, float | None] | None = None
) -> Snapshot:
    """The flow's view of a record; an unset super amount stays None (absent).

    ``amounts`` are the record's (streams.domain.snapshot_record.record_amounts), when
    the caller already has them; Snapshot itself rejects NaN, inf and negative ones.
    """
    amounts = record_amounts(msg) if amounts is None else amounts
    values: list[Any] = [amounts[name] for name in AMOUNT_FIELDS]
    return Snapshot(msg.security, msg.market, msg.trading_day, msg.update_timestamp, *values)


class SecurityProcessor:
    """Flow state + detector for one security at a time, parameterised per security."""

    def __init__(self, thresholds: ThresholdConfig, clock: Callable[[], float] = time.time) -> None:
        self.thresholds = thresholds
        self.clock = clock  # wall clock, for "no more than a day ahead"

    def decode(self, key: bytes | None, value: bytes | None) -> Snapshot:
        """The snapshot of a valid record; DecodeError (with the reason) for anything else."""
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
        amounts = record_amounts(msg)
        try:
            snap = snapshot_from_record(msg, amounts)  # malformed day, NaN/inf/negative amounts
            validate_snapshot(
                security=snap.security,
                market=snap.market,
                trading_day=snap.trading_day,
                update_timestamp=snap.event_ts,
                amounts=amounts,
                now=self.clock(),
            )
        except InvalidSnapshot as exc:
            raise DecodeError(f"invalid snapshot of {msg.security}: {exc.detail}") from exc
        except ValueError as exc:
            raise DecodeError(f"snapshot of {msg.security} is not usable: {exc}") from exc
        return snap

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
        point = flow.fold(snap)
        if isinstance(point, Skip):
            # Duplicate or stale: the state counted it, nothing is published.
            return Outcome(Result(point.value), None)
        alert = detector.step(point, params)
        return Outcome(
            Result.FLOW,
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
