"""Detector parameters and their per-market / per-security overrides.

Resolution order, later wins: the built-in (or command-line) defaults, the file's
``defaults``, ``markets[<market>]``, ``securities[<security>]``. A file is JSON:

    {"defaults": {"theta_rel": 0.1},
     "markets": {"HK": {"theta_abs": 5e6}},
     "securities": {"HK.00700": {"theta_abs": 2e7, "confirm": 3}}}

Unknown keys and bad values are errors naming the offending path, so a typo in a
threshold file fails at start-up instead of silently using a default. Market and
security keys are read like the watchlist (:mod:`streams.domain.market`): "hk.00700"
configures HK.00700, and a code the watchlist rejects is rejected here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import orjson

from streams.domain.market import SecurityFormatError, SecurityId, parse_market, parse_security

PARAM_KEYS: tuple[str, ...] = ("window", "theta_abs", "theta_rel", "confirm", "cooldown")
_SECTIONS = ("defaults", "markets", "securities")


class ThresholdConfigError(ValueError):
    """A threshold file or override that cannot be used."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class DetectorParams:
    """Parameters of the rolling flow and reversal detector for one security.

    window: W in seconds of event time; theta_abs / theta_rel: theta(i) =
    max(theta_abs, theta_rel * dT); confirm: snapshots the new side must hold
    (the flip counts as one); cooldown: event-time seconds between two alerts.
    Users read these definitions in docs/definitions.md.
    """

    window: float = 300.0
    theta_abs: float = 0.0
    theta_rel: float = 0.10
    confirm: int = 2
    cooldown: float = 600.0

    def __post_init__(self) -> None:
        problem = _check_all(
            {
                "window": self.window,
                "theta_abs": self.theta_abs,
                "theta_rel": self.theta_rel,
                "confirm": self.confirm,
                "cooldown": self.cooldown,
            }
        )
        if problem:
            raise ThresholdConfigError(problem)
        # Normalise numeric types so equal parameters compare and serialise equally.
        for name in ("window", "theta_abs", "theta_rel", "cooldown"):
            object.__setattr__(self, name, float(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check_value(key: str, value: object) -> str | None:
    """Why ``value`` is not acceptable for ``key`` (None when it is)."""
    if key == "confirm":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return f"confirm must be an integer >= 1, got {value!r}"
        return None
    if not _is_number(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
        return f"{key} must be a finite number, got {value!r}"
    number = float(value)  # type: ignore[arg-type]
    if key == "window" and number <= 0:
        return f"window must be > 0 seconds, got {value!r}"
    if number < 0:
        return f"{key} must be >= 0, got {value!r}"
    return None


def _check_all(values: Mapping[str, object]) -> str | None:
    for key, value in values.items():
        problem = _check_value(key, value)
        if problem:
            return problem
    return None


def _overrides(where: str, raw: object) -> dict[str, Any]:
    """Validate one override block ({"theta_abs": ..., ...})."""
    if not isinstance(raw, Mapping):
        raise ThresholdConfigError(f"{where}: expected an object, got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in PARAM_KEYS:
            raise ThresholdConfigError(
                f"{where}: unknown key {key!r} (expected one of: {', '.join(sorted(PARAM_KEYS))})"
            )
        problem = _check_value(key, value)
        if problem:
            raise ThresholdConfigError(f"{where}: {problem}")
        out[key] = value
    return out


def _security_key(where: str, security: str) -> SecurityId:
    """The parsed security of a threshold key: the same codes the watchlist accepts."""
    try:
        return parse_security(security)
    except SecurityFormatError as exc:
        raise ThresholdConfigError(f"{where}: {exc}") from None


def _market_key(where: str, market: str) -> str:
    """A known market prefix ('hk' -> 'HK'), as security codes spell it."""
    try:
        return parse_market(market)
    except SecurityFormatError as exc:
        raise ThresholdConfigError(f"{where}: {exc}") from None


def _by_key(
    section: str, blocks: Mapping[str, Mapping[str, Any]], canonical: Callable[[str, str], str]
) -> dict[str, dict[str, Any]]:
    """Validated override blocks under their canonical key; two spellings of one key clash."""
    out: dict[str, dict[str, Any]] = {}
    spelled: dict[str, str] = {}
    for key, block in blocks.items():
        name = canonical(section, key)
        if name in out:
            raise ThresholdConfigError(f"{section}: {spelled[name]!r} and {key!r} both name {name}")
        spelled[name] = key
        out[name] = _overrides(f"{section}.{key}", block)
    return out


class ThresholdConfig:
    """Resolves :class:`DetectorParams` per security from layered overrides."""

    def __init__(
        self,
        defaults: DetectorParams | None = None,
        markets: Mapping[str, Mapping[str, Any]] | None = None,
        securities: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.defaults = defaults or DetectorParams()
        self.markets = _by_key("markets", markets or {}, _market_key)
        self.securities = _by_key(
            "securities", securities or {}, lambda where, key: str(_security_key(where, key))
        )
        self._cache: dict[str, DetectorParams] = {}
        # Fail now, not on the first snapshot of a security, if a combination is invalid.
        for market in self.markets:
            self._resolve(None, market)
        for sec in self.securities:
            self.for_security(sec)

    @classmethod
    def from_mapping(
        cls, data: object, defaults: DetectorParams | None = None, where: str = "thresholds"
    ) -> ThresholdConfig:
        """Build from the decoded JSON document."""
        if not isinstance(data, Mapping):
            raise ThresholdConfigError(f"{where}: expected a JSON object at the top level")
        unknown = sorted(set(data) - set(_SECTIONS))
        if unknown:
            raise ThresholdConfigError(
                f"{where}: unknown section(s) {', '.join(map(repr, unknown))} "
                f"(expected: {', '.join(_SECTIONS)})"
            )
        try:
            base = replace(
                defaults or DetectorParams(), **_overrides("defaults", data.get("defaults", {}))
            )
            for section in ("markets", "securities"):
                if not isinstance(data.get(section, {}), Mapping):
                    raise ThresholdConfigError(f"{section}: expected an object")
            return cls(base, data.get("markets", {}), data.get("securities", {}))
        except ThresholdConfigError as exc:
            raise ThresholdConfigError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path, defaults: DetectorParams | None = None) -> ThresholdConfig:
        """Read a JSON threshold file."""
        path = Path(path)
        try:
            data = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise ThresholdConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except orjson.JSONDecodeError as exc:
            raise ThresholdConfigError(f"{path}: not valid JSON: {exc}") from None
        return cls.from_mapping(data, defaults, where=str(path))

    @classmethod
    def layered(cls, given: Mapping[str, Any], path: str = "") -> ThresholdConfig:
        """The command's values (window, theta_abs, theta_rel, confirm, cooldown; any
        missing or None keeps its built-in default) as defaults, then the thresholds
        file at ``path`` (if non-empty) layered on top."""
        values = {k: given[k] for k in PARAM_KEYS if given.get(k) is not None}
        try:
            defaults = DetectorParams(**values)
        except ThresholdConfigError as exc:
            raise ThresholdConfigError(f"options: {exc}") from None
        if path:
            return cls.load(path, defaults)
        return cls(defaults)

    def _resolve(self, security: str | None, market: str) -> DetectorParams:
        merged: dict[str, Any] = dict(self.markets.get(market, {}))
        if security is not None:
            merged.update(self.securities.get(security, {}))
        where = f"securities.{security}" if security else f"markets.{market}"
        try:
            return replace(self.defaults, **merged)
        except ThresholdConfigError as exc:
            raise ThresholdConfigError(f"{where}: {exc}") from None

    def for_security(self, security: str) -> DetectorParams:
        """Parameters for ``security`` ('HK.00700'): defaults < market < security."""
        params = self._cache.get(security)
        if params is None:
            sec = _security_key("security", security)
            params = self._resolve(str(sec), sec.market)
            self._cache[security] = params
        return params
