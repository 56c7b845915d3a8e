"""Offline backtest: the worker's processing over a recorded file, many parameter sets at once.

``capflow backtest`` answers "how many alerts would these thresholds have given on that
day?" without Kafka. It reads the JSON lines ``capflow record`` writes, decodes each
record with the worker's own decoder (a record the worker would dead-letter is skipped
and reported), and folds the snapshots through :class:`FlowState` and
:class:`DetectorState` exactly as the worker does, so the alerts of one parameter set
are the worker's alerts, byte for byte.

Unlike the worker, states stay Python objects between records (the worker stores them
as JSON in its table after every record), and parameter sets share work: per security,
one :class:`FlowState` per distinct window feeds the detectors of every set using that
window. The numbers are defined in docs/definitions.md.
"""

from __future__ import annotations

import itertools
import os
import statistics
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from google.protobuf.descriptor import FieldDescriptor

from streams.domain.snapshot_record import record_from_fields
from streams.offline.recording import Record, from_json_line
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from streams.pipeline.processor import DecodeError, SecurityProcessor
from streams.processing.backfill import Inbox, MinuteSeries, Waiting, advance
from streams.processing.detector import Alert, DetectorState
from streams.processing.events import alert_payload
from streams.processing.flow import FlowState, Snapshot
from streams.processing.thresholds import (
    PARAM_KEYS,
    DetectorParams,
    ThresholdConfig,
    ThresholdConfigError,
)

if TYPE_CHECKING:
    from streams.archive.query import DayRange

Progress = Callable[[int, int], None]  # (done, total)
PROGRESS_EVERY = 16384  # records between two progress calls: cheap, yet about 10 per second
# An archive's snapshots in the order the worker reads them: per partition, by offset
# (a security is always in one partition, so each security's records keep their order).
TOPIC_ORDER = ("kafka_partition", "kafka_offset")


class BacktestError(ValueError):
    """The input cannot be backtested (a missing or empty file)."""


class ParameterError(BacktestError):
    """The parameters asked for are not usable (bad usage rather than bad input)."""


# -- reading a recording ---------------------------------------------------------------------


class _NotFast(Exception):
    """A line the fast reader does not handle; the reference parser decides."""


def _as_double(value: object) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    raise _NotFast  # "NaN", "Infinity", numbers as strings: json_format's rules apply


def _as_integer(value: object) -> int:
    if type(value) is int:
        return value
    if type(value) is str and value.lstrip("-").isdigit():
        return int(value)  # 64-bit integers are strings in proto3 JSON
    raise _NotFast


def _as_string(value: object) -> str:
    if type(value) is str:
        return value
    raise _NotFast


_INTEGER_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
}


def _converters() -> dict[str, tuple[str, Callable[[object], Any]]]:
    """JSON key (proto name or JSON name) -> (field, converter), for the plain scalar fields."""
    out: dict[str, tuple[str, Callable[[object], Any]]] = {}
    for f in DistributionSnapshot.DESCRIPTOR.fields:
        if f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            convert: Callable[[object], Any] = _as_double
        elif f.type in _INTEGER_TYPES:
            convert = _as_integer
        elif f.type == FieldDescriptor.TYPE_STRING:
            convert = _as_string
        else:
            continue  # any other kind of field goes through json_format
        out[f.name] = (f.name, convert)
        out[f.json_name] = (f.name, convert)
    return out


_FIELDS = _converters()


def parse_line(line: bytes, where: str) -> Record:
    """One recording line as the message ``streams.offline.recording.from_json_line`` returns.

    The common case (plain numbers and strings) is read with orjson and built directly,
    about 20x faster than json_format; anything else goes through ``from_json_line``,
    which also gives the error message for a bad line.
    """
    try:
        data = orjson.loads(line)
        if type(data) is not dict:
            raise _NotFast
        kwargs = {}
        for key, value in data.items():
            name, convert = _FIELDS[key]
            kwargs[name] = convert(value)
        msg = DistributionSnapshot(**kwargs)
    except (_NotFast, KeyError, ValueError, TypeError, orjson.JSONDecodeError):
        return from_json_line(line, where)
    if not msg.security or not msg.trading_day or msg.update_timestamp <= 0:
        return from_json_line(line, where)  # raises with the reference message
    return msg


@dataclass
class Recording:
    """The decoded snapshots of a file, in file order, and what was left out.

    A recording of a worker that fetched minute history also holds capital-flow series:
    ``series`` pairs each with the index of the first snapshot after it in the file,
    and ``refs`` gives each snapshot the series it names. Without series, the names
    are ignored (as ``capflow replay`` leaves them out).
    """

    path: Path
    snapshots: list[Snapshot]
    rejected: list[str] = field(default_factory=list)  # "file:line: reason"
    refs: list[int] = field(default_factory=list)
    series: list[tuple[int, MinuteSeries]] = field(default_factory=list)

    @property
    def securities(self) -> int:
        return len({s.security for s in self.snapshots})

    @property
    def security_days(self) -> int:
        return len({(s.security, s.trading_day) for s in self.snapshots})


# A record to decode: where it is from (for messages), the record, progress so far.
_Item = tuple[str, Record, int]


def load_recording(
    path: str | Path,
    progress: Progress | None = None,
    securities: Collection[str] = (),
) -> Recording:
    """Read and decode a recording; lines that are not snapshots raise RecordingError.

    A line that is a snapshot but one the worker would send to the dead-letter topic
    (its decoder refuses it) is left out and listed in ``rejected``. ``securities``:
    only these (empty: all).
    """
    path = Path(path)
    if not path.is_file():
        raise BacktestError(f"{path} does not exist or is not a file")

    def lines() -> Iterator[_Item]:
        done = 0
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, 1):
                done += len(line)
                if line.strip():
                    where = f"{path}:{number}"
                    yield where, parse_line(line, where), done

    recording = _decode(path, lines(), os.path.getsize(path), progress, securities)
    if not recording.snapshots:
        raise BacktestError(f"{path} holds no usable snapshots")
    return recording


def load_archive(
    root: str | Path,
    days: DayRange,
    progress: Progress | None = None,
    securities: Collection[str] = (),
) -> Recording:
    """The snapshots of a Parquet archive (``capflow archive``) in ``days``, decoded as
    :func:`load_recording` decodes a file's; each security's in its topic order."""
    from streams.archive.datasets import SNAPSHOTS
    from streams.archive.query import count_rows, read_rows

    root = Path(root)
    wanted = sorted(securities) or None
    rows = read_rows(root, SNAPSHOTS, days, wanted, order=("trading_day", *TOPIC_ORDER))

    def records() -> Iterator[_Item]:
        for done, row in enumerate(rows, 1):
            where = f"{root}: {row['security']} {row['trading_day']} offset {row['kafka_offset']}"
            yield where, record_from_fields(row), done

    total = count_rows(root, SNAPSHOTS, days, wanted)
    recording = _decode(root, records(), total, progress, ())
    if not recording.snapshots:
        raise BacktestError(f"{root} holds no usable snapshots {days.describe()}")
    return recording


def _decode(
    path: Path,
    items: Iterable[_Item],
    total: int,
    progress: Progress | None,
    securities: Collection[str],
) -> Recording:
    """Each record through the worker's decoder: the snapshots (and series), and the
    refused ones."""
    decoder = SecurityProcessor(ThresholdConfig())
    snapshots: list[Snapshot] = []
    refs: list[int] = []
    series: list[tuple[int, MinuteSeries]] = []
    rejected: list[str] = []
    for number, (where, msg, done) in enumerate(items, 1):
        if securities and msg.security not in securities:
            continue
        try:
            if isinstance(msg, DistributionSnapshot):
                polled = decoder.decode_polled(msg.security.encode(), msg.SerializeToString())
                snapshots.append(polled.snapshot)
                refs.append(polled.ref_ms)
            else:
                minutes = decoder.decode_series(msg.security.encode(), msg.SerializeToString())
                series.append((len(snapshots), minutes))
        except DecodeError as exc:
            rejected.append(f"{where}: {exc}")
        if progress is not None and number % PROGRESS_EVERY == 0:
            progress(done, total)
    if progress is not None:
        progress(total, total)
    return Recording(path, snapshots, rejected, refs if series else [], series)


# -- parameter sets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterSet:
    """One combination of the swept values, resolved per security like the worker does."""

    defaults: DetectorParams
    thresholds: ThresholdConfig

    def describe(self) -> dict[str, float | int]:
        return self.defaults.to_dict()


def parameter_grid(
    values: Mapping[str, Sequence[float | int]],
    base: DetectorParams | None = None,
    thresholds_file: str | Path | None = None,
) -> list[ParameterSet]:
    """Every combination of ``values`` (keys of PARAM_KEYS), in the order given.

    Each combination becomes the defaults layer (as the worker's command-line values
    are) under the thresholds file's markets and securities, if one is given.
    """
    unknown = sorted(set(values) - set(PARAM_KEYS))
    if unknown:
        raise ParameterError(f"unknown parameter(s): {', '.join(unknown)}")
    base = base or DetectorParams()
    keys = [k for k in PARAM_KEYS if values.get(k)]
    sets: list[ParameterSet] = []
    for combo in itertools.product(*(values[k] for k in keys)):
        try:
            chosen: dict[str, Any] = dict(zip(keys, combo, strict=True))
            defaults = replace(base, **chosen)
            if thresholds_file:
                config = ThresholdConfig.load(thresholds_file, defaults)
            else:
                config = ThresholdConfig(defaults)
        except ThresholdConfigError as exc:
            raise ParameterError(str(exc)) from None
        sets.append(ParameterSet(defaults, config))
    return sets


# -- running --------------------------------------------------------------------------------


@dataclass
class Result:
    """The alerts one parameter set gives over a recording, and what they add up to."""

    parameters: ParameterSet
    security_days: int
    alerts: list[Alert] = field(default_factory=list)

    @property
    def alerts_per_security_day(self) -> float:
        return len(self.alerts) / self.security_days if self.security_days else 0.0

    @property
    def median_gap_s(self) -> float | None:
        """Median event time between consecutive alerts of one security on one day."""
        last: dict[tuple[str, str], float] = {}
        gaps: list[float] = []
        for alert in self.alerts:
            key = (alert.security, alert.trading_day)
            if key in last:
                gaps.append(alert.event_ts - last[key])
            last[key] = alert.event_ts
        return statistics.median(gaps) if gaps else None

    def payloads(self) -> Iterable[bytes]:
        """The alerts exactly as the worker publishes them on capflow.alerts.v1."""
        return (alert_payload(alert) for alert in self.alerts)

    def row(self) -> dict[str, Any]:
        return {
            **self.parameters.describe(),
            "alerts": len(self.alerts),
            "alerts_per_security_day": self.alerts_per_security_day,
            "median_gap_s": self.median_gap_s,
        }


# Per security: one lane per distinct window, each a FlowState (with the inbox that puts
# minute history in its place) and the detectors it feeds.
_Detector = tuple[DetectorState, DetectorParams, list[Alert]]


@dataclass
class _Lane:
    flow: FlowState
    detectors: list[_Detector]
    inbox: Inbox = field(default_factory=Inbox)

    def take(self, released: list[Waiting]) -> None:
        """Each snapshot the inbox let through, as the worker's processing step takes it."""
        pairs = [(det, params) for det, params, _ in self.detectors]
        for waiting in released:
            step = advance(self.flow, self.inbox, waiting, pairs)
            for (_, _, alerts), found, alert in zip(
                self.detectors, step.found, step.alerts, strict=False
            ):
                alerts.extend(found)
                if alert is not None:
                    alerts.append(alert)


def _lanes(security: str, results: Sequence[Result]) -> list[_Lane]:
    by_window: dict[float, _Lane] = {}
    for result in results:
        params = result.parameters.thresholds.for_security(security)
        lane = by_window.get(params.window)
        if lane is None:
            # As the worker: a security's FlowState is created with its resolved window.
            lane = by_window[params.window] = _Lane(FlowState(window=params.window), [])
        lane.detectors.append((DetectorState(), params, result.alerts))
    return list(by_window.values())


def run(
    recording: Recording, sets: Sequence[ParameterSet], progress: Progress | None = None
) -> list[Result]:
    """Fold every snapshot through flows and detectors of every set; one Result per set."""
    if not sets:
        raise ParameterError("no parameter set to run")
    results = [Result(s, recording.security_days) for s in sets]
    lanes_of: dict[str, list[_Lane]] = {}

    def lanes(security: str) -> list[_Lane]:
        found = lanes_of.get(security)
        if found is None:
            found = lanes_of[security] = _lanes(security, results)
        return found

    total = len(recording.snapshots)
    if recording.series:
        _run_with_history(recording, lanes, progress)
    else:
        for i, snap in enumerate(recording.snapshots, 1):
            for lane in lanes(snap.security):
                point = lane.flow.update(snap)
                if point is None:  # duplicate or late: changes nothing, as in the worker
                    continue
                for detector, params, alerts in lane.detectors:
                    alert = detector.step(point, params)
                    if alert is not None:
                        alerts.append(alert)
            if progress is not None and i % PROGRESS_EVERY == 0:
                progress(i, total)
    if progress is not None:
        progress(total, total)
    return results


def _run_with_history(
    recording: Recording,
    lanes: Callable[[str], list[_Lane]],
    progress: Progress | None,
) -> None:
    """The snapshots and the capital-flow series in file order, each lane's inbox putting
    them in the order the poller meant, as the worker's does."""
    series = list(recording.series)
    total = len(recording.snapshots)

    def series_before(index: float) -> None:
        while series and series[0][0] <= index:
            _, minutes = series.pop(0)
            for lane in lanes(minutes.security):
                lane.take(lane.inbox.receive(minutes))

    for i, (snap, ref) in enumerate(zip(recording.snapshots, recording.refs, strict=True)):
        series_before(i)
        for lane in lanes(snap.security):
            lane.take(lane.inbox.admit(snap, ref))
        if progress is not None and (i + 1) % PROGRESS_EVERY == 0:
            progress(i + 1, total)
    series_before(float("inf"))


# -- output ---------------------------------------------------------------------------------


def write_alerts(result: Result, path: str | Path) -> int:
    """The alerts of one set as JSON lines (the worker's payload bytes); how many."""
    count = 0
    with open(path, "wb") as out:
        for payload in result.payloads():
            out.write(payload + b"\n")
            count += 1
    return count


def render_sweep(results: Sequence[Result], path: str | Path) -> Path:
    """PNG: alerts per security-day and median gap for each parameter set."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "capflow backtest --plot needs matplotlib: pip install 'capflow[plot]'"
        ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label(r.parameters) for r in results]
    height = max(2.5, 0.35 * len(results) + 1.5)
    fig, (ax_rate, ax_gap) = plt.subplots(
        1, 2, figsize=(12, height), sharey=True, constrained_layout=True
    )
    try:
        ys = list(range(len(results)))
        ax_rate.barh(ys, [r.alerts_per_security_day for r in results], color="tab:blue")
        ax_rate.set_yticks(ys, labels, fontsize=8)
        ax_rate.invert_yaxis()
        ax_rate.set_xlabel("alerts per security per day")
        gaps = [r.median_gap_s for r in results]
        ax_gap.barh(ys, [g / 60 if g is not None else 0.0 for g in gaps], color="tab:orange")
        for y, g in zip(ys, gaps, strict=True):
            if g is None:
                ax_gap.text(0, y, " no two alerts on one security-day", va="center", fontsize=7)
        ax_gap.set_xlabel("median minutes between alerts (same security and day)")
        fig.suptitle(f"capflow backtest: {len(results)} parameter set(s)")
        out = Path(path)
        fig.savefig(out, dpi=100)
    finally:
        plt.close(fig)
    return out


def label(parameters: ParameterSet) -> str:
    p = parameters.defaults
    return (
        f"W={p.window:g} abs={p.theta_abs:g} rel={p.theta_rel:g} "
        f"confirm={p.confirm} cooldown={p.cooldown:g}"
    )
