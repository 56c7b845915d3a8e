"""The simulator's market: cumulative capital distribution as a pure function of time.

``MarketModel.distribution(security, t)`` depends only on (scenario, seed, security,
t), so every poll at the same simulated second sees the same numbers, whichever
connection asks and in whatever order. Amounts are integrals of non-negative
per-class rates over the regular trading hours of the security's market-local day:
0 before the open, frozen during lunch and after the close, back to 0 the next day
(weekends and the scenario's holidays are closed all day). Like OpenD, updateTime
stays at the last trade while the market is at lunch or closed. Rates are
piecewise constant per simulated minute, with deterministic noise from a hash of
(seed, security, minute).

Securities in the scenario follow its scripted large net rate; any other known
security gets a plausible random walk of the large-order net share.

``MarketModel.capital_flow(security, t)`` is the same day seen per minute (protocol
3211): at every trading minute mark since the open, the class nets of
``distribution(security, mark)``, from the same integration, so a row and a capital
distribution answer at that minute agree to the cent.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from streams.domain.capital_flow import CapitalFlow, FlowRow
from streams.domain.market import SESSIONS, SecurityFormatError, format_local_time, parse_security
from streams.opend.snapshot import CapitalDistribution
from streams.opend_sim.calendar import Calendar
from streams.opend_sim.scenario import CLASSES, Scenario, SecurityScript

BUCKET = 60.0  # seconds of simulated time with constant rates
SUPER_SHARE = 0.4  # share of the scripted large net rate given to super (rest to big)

# Codes that look valid but name nothing, for tests of the error path.
NONEXISTENT: frozenset[str] = frozenset({"HK.99999", "US.ZZZZZ", "SH.699999", "SZ.009999"})
_FORMATS: dict[str, re.Pattern[str]] = {
    "HK": re.compile(r"^\d{5,6}$"),
    "US": re.compile(r"^\.?[A-Z]{1,5}(\.[A-Z])?$"),
    "SH": re.compile(r"^\d{6}$"),
    "SZ": re.compile(r"^\d{6}$"),
}


@dataclass(frozen=True)
class Availability:
    """Whether the simulator serves a security, and why not."""

    status: str  # "ok", "unknown" or "unsupported"
    reason: str = ""


def availability(security: str, scenario: Scenario | None = None) -> Availability:
    """Simple rule: indices are unsupported, malformed or NONEXISTENT codes unknown.

    Index codes: HK six-digit codes starting with 8 (HK.800000), SH codes starting
    000 (SH.000001), SZ codes starting 399 (SZ.399001), US codes starting with a dot
    (US..IXIC). Only HK, US, SH and SZ are modelled. Scenario securities are always ok.
    """
    try:
        sec = parse_security(security)
    except SecurityFormatError as exc:
        return Availability("unknown", str(exc))
    name = str(sec)
    if scenario is not None and name in scenario.securities:
        return Availability("ok")
    if sec.market not in SESSIONS:
        return Availability("unsupported", f"market {sec.market} is not supported")
    code = sec.code
    if not _FORMATS[sec.market].match(code) or name in NONEXISTENT:
        return Availability("unknown", f"unknown stock {name}")
    is_index = (
        (sec.market == "HK" and len(code) == 6 and code.startswith("8"))
        or (sec.market == "SH" and code.startswith("000"))
        or (sec.market == "SZ" and code.startswith("399"))
        or (sec.market == "US" and code.startswith("."))
    )
    if is_index:
        return Availability("unsupported", f"{name} is an index; only stocks, warrants and funds")
    if sec.market == "HK" and len(code) != 5:
        return Availability("unknown", f"unknown stock {name}")
    return Availability("ok")


def _uniform(*parts: object, n: int = 8) -> tuple[float, ...]:
    """n deterministic floats in [0, 1) from a hash of parts."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8 * n).digest()
    return tuple(v / 2**64 for v in struct.unpack(f"<{n}Q", digest))


class MarketModel:
    """Deterministic cumulative capital distribution for any security at any time."""

    def __init__(self, scenario: Scenario | None = None, seed: int = 0) -> None:
        self.scenario = scenario
        self.seed = seed
        self.calendar = scenario.calendar if scenario is not None else Calendar()

    def availability(self, security: str) -> Availability:
        return availability(security, self.scenario)

    def script(self, security: str) -> SecurityScript | None:
        return self.scenario.securities.get(security) if self.scenario else None

    def distribution(self, security: str, t: float) -> CapitalDistribution:
        """Amounts at simulated time t (quantised down to a whole second)."""
        sec = parse_security(security)
        name = str(sec)
        t = float(int(t))
        _day, sessions = self.calendar.sessions(sec.market, t)
        totals = self._integrate(name, sessions, t)
        last = self.calendar.last_trade(sec.market, t)
        at = t if last is None else float(int(last))
        keys = [f"capital_{d}_{c}" for d in ("in", "out") for c in CLASSES]
        return CapitalDistribution(
            security=name,
            market=sec.market,
            qot_market=sec.qot_market,
            code=sec.code,
            **{k: round(v, 2) for k, v in zip(keys, totals, strict=True)},
            update_time=format_local_time(sec.market, at),
            update_timestamp=at,
        )

    def large_net(self, security: str, t: float) -> float:
        """L = (in - out) of super + big at t (for tests and demos)."""
        d = self.distribution(security, t)
        return (
            (d.capital_in_super or 0.0)
            + d.capital_in_big
            - (d.capital_out_super or 0.0)
            - d.capital_out_big
        )

    def capital_flow(self, security: str, t: float) -> CapitalFlow:
        """The intraday minute series at simulated time t (quantised to a whole second).

        One row per trading minute mark since the open (none inside a lunch break), each
        the cumulative net per class of :meth:`distribution` at that mark; the open row
        is zeros. Inside a session between two marks, a last row labelled with the next
        mark carries the nets as of t. lastValidTime is distribution(t)'s updateTime:
        the last trade (the close at lunch and after it), or t before the open and on
        closed days, which have no rows.
        """
        sec = parse_security(security)
        name = str(sec)
        t = float(int(t))
        _day, sessions = self.calendar.sessions(sec.market, t)
        last = self.calendar.last_trade(sec.market, t)
        at = t if last is None else float(int(last))
        labels, marks = _minute_marks(sessions, at) if last is not None else ([], [])
        rows = tuple(
            _flow_row(sec.market, label, totals)
            for label, totals in zip(labels, self._integrate_at(name, sessions, marks), strict=True)
        )
        return CapitalFlow(
            security=name,
            market=sec.market,
            qot_market=sec.qot_market,
            code=sec.code,
            trading_day=format_local_time(sec.market, at)[:10],
            rows=rows,
            last_valid_time=format_local_time(sec.market, at),
            last_valid_timestamp=at,
        )

    # -- rates --------------------------------------------------------------------

    def _integrate(self, name: str, sessions: list[tuple[float, float]], t: float) -> list[float]:
        return self._integrate_at(name, sessions, (t,))[0]

    def _integrate_at(
        self, name: str, sessions: list[tuple[float, float]], marks: Sequence[float]
    ) -> list[list[float]]:
        """The eight cumulative amounts at each of the ascending ``marks``, in one pass.

        The steps up to a mark are the ones a single integration to that mark takes
        (marks split nothing else), so every mark gets the same sums as on its own.
        """
        out: list[list[float]] = []
        if not marks:
            return out
        t = marks[-1]
        totals = [0.0] * 8
        script = self.script(name)
        cuts: list[float] = []
        if script is not None and self.scenario is not None:
            cuts = [self.scenario.start + at for at in script.boundaries()]
        walk: float | None = None
        last_bucket: int | None = None
        k = 0  # the next mark to record
        for open_, close in sessions:
            end = min(close, t)
            a = open_
            while a < end:
                while marks[k] <= a:
                    out.append(list(totals))
                    k += 1
                bucket = int(a // BUCKET)
                b = min(end, (bucket + 1) * BUCKET, marks[k])
                for cut in cuts:
                    if a < cut < b:
                        b = cut
                        break
                if script is not None:
                    rates = self._scripted_rates(script, bucket, a)
                else:
                    if bucket != last_bucket:
                        walk = self._step_walk(name, bucket, walk)
                        last_bucket = bucket
                    assert walk is not None
                    rates = self._default_rates(name, bucket, walk)
                span = b - a
                for i, rate in enumerate(rates):
                    totals[i] += rate * span
                a = b
        out.extend(list(totals) for _ in marks[k:])
        return out

    def _scripted_rates(self, script: SecurityScript, bucket: int, at: float) -> list[float]:
        assert self.scenario is not None
        seg = script.segment_at_epoch(at, self.scenario.start)
        u = _uniform(self.seed, script.security, bucket, n=6)
        net = seg.large_net_rate
        split = {"super": SUPER_SHARE * net, "big": (1 - SUPER_SHARE) * net}
        ins: list[float] = []
        outs: list[float] = []
        for i, cls in enumerate(("super", "big")):
            # One factor for both directions: noise changes turnover, never the scripted net.
            base = seg.base[cls] * (1 + seg.noise * (2 * u[i] - 1))
            ins.append(base + max(split[cls], 0.0))
            outs.append(base + max(-split[cls], 0.0))
        for j, cls in enumerate(("mid", "small")):
            ins.append(seg.base[cls] * (1 + seg.noise * (2 * u[2 + 2 * j] - 1)))
            outs.append(seg.base[cls] * (1 + seg.noise * (2 * u[3 + 2 * j] - 1)))
        return ins + outs

    def _params(self, name: str) -> tuple[float, tuple[float, float, float, float]]:
        (u,) = _uniform(self.seed, name, "scale", n=1)
        scale = 10 ** (4.0 + 1.5 * u)  # per second, per direction, all classes
        return scale, (0.15, 0.25, 0.30, 0.30)

    def _step_walk(self, name: str, bucket: int, walk: float | None) -> float:
        (u,) = _uniform(self.seed, name, "walk", bucket, n=1)
        if walk is None:
            return 0.6 * (u - 0.5)
        return max(-0.6, min(0.6, 0.95 * walk + 0.25 * (u - 0.5)))

    def _default_rates(self, name: str, bucket: int, walk: float) -> list[float]:
        scale, shares = self._params(name)
        u = _uniform(self.seed, name, bucket, n=8)
        ins: list[float] = []
        outs: list[float] = []
        for i, share in enumerate(shares):
            base = scale * share
            tilt = walk if i < 2 else 0.3 * walk
            ins.append(base * (1 + tilt) * (0.7 + 0.6 * u[i]))
            outs.append(base * (1 - tilt) * (0.7 + 0.6 * u[4 + i]))
        return ins + outs


def _minute_marks(
    sessions: list[tuple[float, float]], at: float
) -> tuple[list[float], list[float]]:
    """(row labels, instants whose amounts they carry) up to the last trade ``at``.

    Every minute mark of every session from its open to its close, up to ``at``; when
    ``at`` falls between two marks of a session, one more row labelled with the next
    mark carries the amounts at ``at`` (the minute in progress).
    """
    labels: list[float] = []
    for open_, close in sessions:
        if open_ > at:
            break
        end = min(close, at)
        mark = open_
        while mark <= end:
            labels.append(mark)
            mark += BUCKET
        if labels[-1] < end:  # between two marks: the minute in progress
            labels.append(mark)
    marks = [min(label, at) for label in labels]
    return labels, marks


def _flow_row(market: str, label: float, totals: list[float]) -> FlowRow:
    """A row from the eight amounts (in super..small, out super..small) at its instant.

    Amounts are rounded to the cent as :meth:`MarketModel.distribution` answers them, so
    a class net equals that answer's in - out; inFlow is their sum.
    """
    cents = [round(v, 2) for v in totals]
    nets = [round(cents[i] - cents[4 + i], 2) for i in range(4)]
    return FlowRow(
        time=format_local_time(market, label),
        timestamp=label,
        in_flow=round(sum(nets), 2),
        super_in_flow=nets[0],
        big_in_flow=nets[1],
        mid_in_flow=nets[2],
        sml_in_flow=nets[3],
    )
