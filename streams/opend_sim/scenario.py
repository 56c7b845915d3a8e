"""Scripted scenarios for the simulator: large-order flow that reverses at chosen times.

A scenario is a JSON file::

    {
      "name": "demo",                         // optional, for logs
      "start": "2024-06-03T09:30:00+08:00",   // simulated start time (ISO 8601 with offset)
      "speed": 60,                            // optional default speed factor
      "seed": 7,                              // optional default seed (noise)
      "securities": {
        "HK.00700": {
          "base": {"super": 20000, "big": 30000, "mid": 40000, "small": 50000},
          "noise": 0.2,
          "segments": [
            {"at": 0,    "large_net_rate": 60000},
            {"at": 720,  "large_net_rate": -80000},
            {"at": 1680, "large_net_rate": 70000, "noise": 0.1}
          ]
        }
      },
      "user_groups": {"Tech": ["HK.00700", "US.AAPL"]}  // optional watchlist groups (3213)
    }

Units: amounts are currency units per second of *trading* time (rates only accrue
while the market is in regular hours). ``base`` is the baseline turnover rate per
class and per direction (in and out each get it), ``large_net_rate`` is the
super+big net rate (in minus out; negative = outflow), split 40 % super / 60 % big.
``noise`` (0..1) scales a deterministic per-minute multiplicative noise on the
baseline; it never changes the scripted large net rate, so the sign of the large
net flow within a segment is exactly the sign of ``large_net_rate``.
A segment starts ``at`` seconds of simulated time after ``start`` and lasts until
the next one; ``base`` and ``noise`` on a segment override the security's values.
``user_groups`` are the watchlist groups of the simulated account (Qot_GetUserSecurity):
name -> codes in the group's order; the codes need not be scripted securities.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from streams.domain.market import SESSIONS, parse_security
from streams.opend_sim.calendar import Calendar

CLASSES: tuple[str, ...] = ("super", "big", "mid", "small")
DEFAULT_BASE: dict[str, float] = {
    "super": 20000.0,
    "big": 30000.0,
    "mid": 40000.0,
    "small": 50000.0,
}
DEMO_PATH = Path(__file__).resolve().parent.parent / "scenarios" / "demo.json"


class ScenarioError(ValueError):
    """The scenario file is not valid."""


@dataclass(frozen=True)
class Segment:
    """Rates from ``at`` seconds after the scenario start until the next segment."""

    at: float
    large_net_rate: float
    base: dict[str, float]
    noise: float


@dataclass(frozen=True)
class SecurityScript:
    security: str
    segments: tuple[Segment, ...]

    def segment_at_epoch(self, t: float, start: float) -> Segment:
        """The segment in force at epoch ``t`` for a scenario starting at epoch ``start``.

        Compares ``start + at <= t`` (the exact times the market model cuts at): the
        offset ``t - start`` can round below a fractional ``at`` and would apply the
        previous segment until the next simulated minute.
        """
        current = self.segments[0]
        for seg in self.segments:
            if start + seg.at <= t:
                current = seg
            else:
                break
        return current

    def boundaries(self) -> list[float]:
        return [seg.at for seg in self.segments[1:]]


@dataclass(frozen=True)
class Reversal:
    """A scripted sign change of the large net rate."""

    security: str
    at: float  # seconds after scenario start
    epoch: float  # simulated epoch seconds
    direction: str  # "inflow_to_outflow" or "outflow_to_inflow"


@dataclass(frozen=True)
class Scenario:
    start: float  # epoch seconds
    securities: dict[str, SecurityScript] = field(default_factory=dict)
    name: str = ""
    speed: float | None = None
    seed: int | None = None
    calendar: Calendar = field(default_factory=Calendar)
    user_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _day(value: Any, where: str) -> str:
    try:
        return datetime.strptime(str(value), "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError as exc:
        raise ScenarioError(f"{where}: expected a date YYYY-MM-DD, got {value!r}") from exc


def _market(name: Any, where: str) -> str:
    if name not in SESSIONS:
        raise ScenarioError(f"{where}: unknown market {name!r}, expected one of {list(SESSIONS)}")
    return str(name)


def _calendar(data: dict[str, Any]) -> Calendar:
    """Holidays and half days of a scenario (both optional)."""
    holidays: dict[str, frozenset[str]] = {}
    raw = data.get("holidays") or {}
    if not isinstance(raw, dict):
        raise ScenarioError("holidays: expected an object of market -> list of dates")
    for market, days in raw.items():
        where = f"holidays.{market}"
        if not isinstance(days, list):
            raise ScenarioError(f"{where}: expected a list of dates")
        holidays[_market(market, where)] = frozenset(_day(d, where) for d in days)
    half_days: dict[str, dict[str, int]] = {}
    raw = data.get("half_days") or {}
    if not isinstance(raw, dict):
        raise ScenarioError("half_days: expected an object of market -> {date: close}")
    for market, closes in raw.items():
        where = f"half_days.{market}"
        if not isinstance(closes, dict):
            raise ScenarioError(f"{where}: expected an object of date -> 'HH:MM'")
        cut: dict[str, int] = {}
        for day, at in closes.items():
            try:
                hhmm = datetime.strptime(str(at), "%H:%M")
            except ValueError as exc:
                raise ScenarioError(f"{where}.{day}: expected HH:MM, got {at!r}") from exc
            cut[_day(day, where)] = hhmm.hour * 3600 + hhmm.minute * 60
        half_days[_market(market, where)] = cut
    return Calendar(holidays, half_days)


def parse_group_codes(codes: Any, where: str) -> tuple[str, ...]:
    """A watchlist group's codes, canonical ("hk.00700" -> "HK.00700"), each once."""
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise ScenarioError(f"{where}: expected a list of codes like 'HK.00700'")
    try:
        return tuple(dict.fromkeys(str(parse_security(c)) for c in codes))
    except ValueError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def _user_groups(raw: Any) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and k for k in raw):
        raise ScenarioError("user_groups: expected an object of group name -> list of codes")
    return {name: parse_group_codes(codes, f"user_groups.{name}") for name, codes in raw.items()}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _base(raw: Any, default: dict[str, float], where: str) -> dict[str, float]:
    if raw is None:
        return dict(default)
    if not isinstance(raw, dict) or set(raw) - set(CLASSES):
        raise ScenarioError(f"{where}.base: expected an object with keys {CLASSES}")
    base = dict(default)
    for key, value in raw.items():
        base[key] = _number(value, f"{where}.base.{key}")
        if base[key] < 0:
            raise ScenarioError(f"{where}.base.{key}: must be >= 0")
    return base


def _noise(raw: Any, default: float, where: str) -> float:
    value = default if raw is None else _number(raw, f"{where}.noise")
    if not 0 <= value <= 1:
        raise ScenarioError(f"{where}.noise: must be within 0..1")
    return value


def parse_scenario(data: dict[str, Any]) -> Scenario:
    """Validate a decoded scenario document."""
    if not isinstance(data, dict):
        raise ScenarioError("scenario must be a JSON object")
    try:
        start_dt = datetime.fromisoformat(str(data["start"]))
    except (KeyError, ValueError) as exc:
        raise ScenarioError(f"start: need an ISO 8601 time with offset ({exc})") from exc
    if start_dt.tzinfo is None:
        raise ScenarioError("start: needs a UTC offset, e.g. 2024-06-03T09:30:00+08:00")
    scripts: dict[str, SecurityScript] = {}
    for security, spec in (data.get("securities") or {}).items():
        where = f"securities.{security}"
        try:
            canonical = str(parse_security(security))
        except ValueError as exc:
            raise ScenarioError(f"{where}: {exc}") from exc
        if not isinstance(spec, dict) or not spec.get("segments"):
            raise ScenarioError(f"{where}: needs a non-empty 'segments' list")
        base = _base(spec.get("base"), DEFAULT_BASE, where)
        noise = _noise(spec.get("noise"), 0.2, where)
        segments = []
        for i, raw in enumerate(spec["segments"]):
            swhere = f"{where}.segments[{i}]"
            if not isinstance(raw, dict):
                raise ScenarioError(f"{swhere}: expected an object")
            segments.append(
                Segment(
                    at=_number(raw.get("at"), f"{swhere}.at"),
                    large_net_rate=_number(raw.get("large_net_rate"), f"{swhere}.large_net_rate"),
                    base=_base(raw.get("base"), base, swhere),
                    noise=_noise(raw.get("noise"), noise, swhere),
                )
            )
        if any(b.at <= a.at for a, b in itertools.pairwise(segments)):
            raise ScenarioError(f"{where}: segment 'at' values must increase")
        scripts[canonical] = SecurityScript(canonical, tuple(segments))
    speed = data.get("speed")
    seed = data.get("seed")
    return Scenario(
        start=start_dt.timestamp(),
        securities=scripts,
        name=str(data.get("name", "")),
        speed=None if speed is None else _number(speed, "speed"),
        seed=None if seed is None else int(seed),
        calendar=_calendar(data),
        user_groups=_user_groups(data.get("user_groups")),
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario JSON file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    return parse_scenario(data)


def reversal_times(scenario: Scenario) -> dict[str, list[Reversal]]:
    """Per security, the scripted flips of the large net rate's sign (zero segments skipped)."""
    result: dict[str, list[Reversal]] = {}
    for security, script in scenario.securities.items():
        flips: list[Reversal] = []
        sign = 0
        for seg in script.segments:
            new = (seg.large_net_rate > 0) - (seg.large_net_rate < 0)
            if new and sign and new != sign:
                direction = "inflow_to_outflow" if new < 0 else "outflow_to_inflow"
                flips.append(Reversal(security, seg.at, scenario.start + seg.at, direction))
            if new:
                sign = new
        result[security] = flips
    return result
