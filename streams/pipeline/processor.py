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
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar

import orjson
from google.protobuf.message import DecodeError as ProtobufDecodeError

from streams.domain.capital_flow import CapitalFlow, capital_flow_from_proto
from streams.domain.snapshot_record import record_amounts
from streams.domain.validation import AMOUNT_FIELDS, InvalidSnapshot, validate_snapshot
from streams.pb.capflow.v1.capital_flow_pb2 import CapitalFlowSeries
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.processing.backfill import Inbox, MinuteSeries, Waiting, advance
from streams.processing.detector import DetectorState
from streams.processing.events import alert_payload, flow_payload
from streams.processing.flow import FlowState, MinuteLevel, Skip, Snapshot
from streams.processing.stored import from_plain, to_plain
from streams.processing.thresholds import ThresholdConfig


class DecodeError(ValueError):
    """A record on the snapshot or capital-flow topic that capflow cannot use.

    ``security`` and ``received_ms`` are set when a capital-flow record was readable
    enough to name them: the snapshots waiting for it then go on without it.
    """

    def __init__(self, message: str, security: str = "", received_ms: int = 0) -> None:
        super().__init__(message)
        self.security = security
        self.received_ms = received_ms


class Result(StrEnum):
    """What became of a snapshot (the ``result`` label of capflow_snapshots_processed)."""

    FLOW = "flow"  # accepted: a flow record (and maybe an alert) is published
    DUPLICATE = "duplicate"  # same event time and amounts as the last accepted one
    STALE = "stale"  # older than the last accepted one (late): dropped
    WAITING = "waiting"  # came before the capital-flow series it names: held for it


@dataclass(frozen=True)
class Outcome:
    """What one snapshot produced: new state, and the flow/alert records to publish.

    ``alert`` is the reversal the snapshot confirmed; ``history_alerts`` are those that
    minute history found before it (``found_in_history``), in event-time order.
    """

    result: Result
    state: bytes | None
    flow: bytes | None = None
    alert: bytes | None = None
    direction: str | None = None
    history_alerts: tuple[tuple[bytes, str], ...] = ()

    def alerts(self) -> list[tuple[bytes, str]]:
        """Every alert to publish for this snapshot, oldest first, with its direction."""
        live = [(self.alert, self.direction or "")] if self.alert is not None else []
        return [*self.history_alerts, *live]


@dataclass
class SecurityState:
    """Everything stored for one security: its flow, its detector, and the inbox that
    puts capital-flow series and snapshots in the order the poller meant."""

    flow: FlowState
    detector: DetectorState
    inbox: Inbox = field(default_factory=Inbox)


_EMPTY_INBOX = Inbox()


@dataclass(frozen=True)
class Polled:
    """A snapshot record: the snapshot, and the capital-flow series it names (0: none)."""

    snapshot: Snapshot
    ref_ms: int = 0


@dataclass(frozen=True)
class Unusable:
    """A capital-flow record of ``security`` that was dead-lettered (see DecodeError)."""

    security: str
    received_ms: int


Incoming = Polled | MinuteSeries | Unusable


def security_of(incoming: Incoming) -> str:
    return incoming.snapshot.security if isinstance(incoming, Polled) else incoming.security


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


M = TypeVar("M", DistributionSnapshot, CapitalFlowSeries)


def _message(kind: type[M], key: bytes | None, value: bytes | None, what: str) -> M:
    """The record as ``kind``, naming a security and a trading day that its key matches."""
    if not value:
        raise DecodeError("empty record value")
    try:
        msg = kind.FromString(value)
    except (ProtobufDecodeError, ValueError) as exc:
        raise DecodeError(f"not a {kind.DESCRIPTOR.full_name}: {exc}") from exc
    if not msg.security or not msg.trading_day:
        raise DecodeError(f"{what} without security or trading_day")
    if key is not None and key.decode(errors="replace") != msg.security:
        raise DecodeError(f"key {key!r} does not match security {msg.security!r}")
    return msg


def series_from_record(key: bytes | None, value: bytes | None, now: float) -> MinuteSeries:
    """The minute levels of a capital-flow record, validated like the client validates a
    reply (streams.domain.capital_flow); DecodeError for anything unusable, naming the
    security and receive time when the record has them."""
    msg = _message(CapitalFlowSeries, key, value, "capital flow")
    if msg.received_at_ms <= 0:
        raise DecodeError(f"capital flow of {msg.security} without received_at_ms")
    try:
        flow = capital_flow_from_proto(msg, now)
    except (InvalidSnapshot, ValueError) as exc:
        detail = exc.detail if isinstance(exc, InvalidSnapshot) else str(exc)
        raise DecodeError(
            f"invalid capital flow of {msg.security}: {detail}", msg.security, msg.received_at_ms
        ) from exc
    return minute_series(flow, msg.received_at_ms)


def minute_series(flow: CapitalFlow, received_ms: int) -> MinuteSeries:
    """A validated capital-flow series as the flow processor folds it: per row its time
    and the four class nets (OpenD's inFlow is not needed: L is super + big)."""
    rows = tuple(
        MinuteLevel(r.timestamp, r.super_in_flow, r.big_in_flow, r.mid_in_flow, r.sml_in_flow)
        for r in flow.rows
    )
    return MinuteSeries(
        flow.security,
        flow.market,
        flow.trading_day,
        received_ms,
        flow.last_valid_timestamp,
        rows,
    )


class SecurityProcessor:
    """Flow state + detector for one security at a time, parameterised per security."""

    def __init__(self, thresholds: ThresholdConfig, clock: Callable[[], float] = time.time) -> None:
        self.thresholds = thresholds
        self.clock = clock  # wall clock, for "no more than a day ahead"

    def decode(self, key: bytes | None, value: bytes | None) -> Snapshot:
        """The snapshot of a valid record; DecodeError (with the reason) for anything else."""
        return self.decode_polled(key, value).snapshot

    def decode_polled(self, key: bytes | None, value: bytes | None) -> Polled:
        """A valid snapshot record with the series it names; DecodeError otherwise."""
        msg = _message(DistributionSnapshot, key, value, "snapshot")
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
        return Polled(snap, max(0, msg.capital_flow_ref_ms))

    def decode_series(self, key: bytes | None, value: bytes | None) -> MinuteSeries:
        """A valid capital-flow record as minute levels; DecodeError otherwise (naming
        the security and receive time when the record has them)."""
        return series_from_record(key, value, self.clock())

    @staticmethod
    def _load(blob: bytes | None, window: float) -> SecurityState:
        if blob is None:
            return SecurityState(FlowState(window=window), DetectorState())
        data = orjson.loads(blob)
        inbox = data.get("inbox")
        return SecurityState(
            FlowState.from_dict(data["flow"]),
            DetectorState.from_dict(data["detector"]),
            Inbox() if inbox is None else from_plain(Inbox, inbox, "inbox"),
        )

    def process(self, blob: bytes | None, snap: Snapshot) -> Outcome:
        """One snapshot (naming no series) with the JSON state in and out."""
        state = self.load(blob, snap.security)
        (outcome,) = self.take(state, Polled(snap))
        return replace(outcome, state=self.dump(state))

    def load(self, blob: bytes | None, security: str) -> SecurityState:
        """The stored state of ``security`` as objects (fresh ones for no blob)."""
        return self._load(blob, self.thresholds.for_security(security).window)

    def take(self, state: SecurityState, incoming: Incoming) -> list[Outcome]:
        """Fold one record into the state objects (changed in place): the outcomes of
        the snapshots it lets through, in order (``state`` None in each).

        A snapshot that names a series not seen yet waits (one WAITING outcome); a
        series lets the snapshots waiting for it through. The worker's batches keep the
        objects of a security across its records and store them once per batch.
        """
        inbox = state.inbox
        if isinstance(incoming, MinuteSeries):
            released = inbox.receive(incoming)
        elif isinstance(incoming, Unusable):
            released = inbox.unusable(incoming.received_ms)
        else:
            released = inbox.admit(incoming.snapshot, incoming.ref_ms)
            if not released or released[-1].snapshot is not incoming.snapshot:
                waiting = [Outcome(Result.WAITING, None)]
                return [*(self._step(state, w) for w in released), *waiting]
        return [self._step(state, w) for w in released]

    def _step(self, state: SecurityState, waiting: Waiting) -> Outcome:
        """One snapshot, after the series it names (if any) is folded in."""
        snap = waiting.snapshot
        detector = state.detector
        params = self.thresholds.for_security(snap.security)
        step = advance(state.flow, state.inbox, waiting, [(detector, params)])
        point = step.point
        if isinstance(point, Skip):
            # Duplicate or stale: the state counted it, nothing is published.
            return Outcome(Result(point.value), None)
        (found,), (alert,) = step.found, step.alerts
        return Outcome(
            Result.FLOW,
            None,
            flow=flow_payload(point, detector.regime, detector.threshold),
            alert=alert_payload(alert) if alert is not None else None,
            direction=alert.direction if alert is not None else None,
            history_alerts=tuple((alert_payload(a), a.direction.value) for a in found),
        )

    @staticmethod
    def dump(state: SecurityState) -> bytes:
        """State objects as the table's blob (what ``process`` returns as ``state``)."""
        data = {"flow": state.flow.to_dict(), "detector": state.detector.to_dict()}
        if state.inbox != _EMPTY_INBOX:  # most states never need one: keep them small
            data["inbox"] = to_plain(state.inbox)
        return orjson.dumps(data)

    @staticmethod
    def describe(blob: bytes) -> dict[str, Any]:
        """The stored state as JSON for the web view."""
        data: dict[str, Any] = orjson.loads(blob)
        return data
