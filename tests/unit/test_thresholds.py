"""Threshold resolution: defaults < market < security, and clear errors for bad files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from streams.processing.thresholds import DetectorParams, ThresholdConfig, ThresholdConfigError
from streams.settings import FlowSettings


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "thresholds.json"
    path.write_bytes(orjson.dumps(data))
    return path


def test_builtin_defaults_match_design() -> None:
    params = DetectorParams()
    assert params == DetectorParams(
        window=300.0, theta_abs=0.0, theta_rel=0.10, confirm=2, cooldown=600.0
    )
    assert ThresholdConfig().for_security("US.AAPL") == params


def test_layering(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "defaults": {"theta_rel": 0.2, "cooldown": 300},
            "markets": {"HK": {"theta_abs": 5e6, "confirm": 3}},
            "securities": {"HK.00700": {"theta_abs": 2e7}, "US.BRK.B": {"window": 120}},
        },
    )
    config = ThresholdConfig.load(path, DetectorParams(window=600.0))
    assert config.for_security("HK.00700") == DetectorParams(
        window=600.0, theta_abs=2e7, theta_rel=0.2, confirm=3, cooldown=300.0
    )
    assert config.for_security("HK.09988") == DetectorParams(
        window=600.0, theta_abs=5e6, theta_rel=0.2, confirm=3, cooldown=300.0
    )
    assert config.for_security("US.BRK.B") == DetectorParams(
        window=120.0, theta_abs=0.0, theta_rel=0.2, confirm=2, cooldown=300.0
    )
    assert config.for_security("US.AAPL").window == 600.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"default": {}}, "unknown section"),
        ({"markets": {"HK": {"theta": 1}}}, r"markets\.HK: unknown key 'theta'"),
        ({"securities": {"HK.00700": {"confirm": 0}}}, r"securities\.HK\.00700: confirm"),
        ({"securities": {"HK.00700": {"confirm": 1.5}}}, "confirm must be an integer"),
        ({"defaults": {"theta_rel": -0.1}}, r"defaults: theta_rel must be >= 0"),
        ({"defaults": {"theta_abs": "5"}}, "theta_abs must be a finite number"),
        ({"defaults": {"window": 0}}, "window must be > 0"),
        ({"defaults": {"cooldown": True}}, "cooldown must be a finite number"),
        ({"securities": {"00700": {}}}, "MARKET.CODE"),
        ({"markets": []}, "markets: expected an object"),
        ([1, 2], "top level"),
    ],
)
def test_bad_files_fail_clearly(tmp_path: Path, data: object, message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(ThresholdConfigError, match=message) as info:
        ThresholdConfig.load(path)
    assert str(path) in str(info.value)


def test_unreadable_and_invalid_json(tmp_path: Path) -> None:
    with pytest.raises(ThresholdConfigError, match="cannot read"):
        ThresholdConfig.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ThresholdConfigError, match="not valid JSON"):
        ThresholdConfig.load(bad)


def test_params_validate_directly() -> None:
    with pytest.raises(ThresholdConfigError, match="finite"):
        DetectorParams(theta_abs=float("inf"))
    with pytest.raises(ValueError, match="confirm"):
        DetectorParams(confirm=0)


def test_flow_settings_layer_the_file_over_the_options(tmp_path: Path) -> None:
    flow = FlowSettings(window=120.0, theta_abs=1.0, theta_rel=0.05, confirm=2, cooldown=60.0)
    assert flow.thresholds().for_security("HK.00700") == DetectorParams(120.0, 1.0, 0.05, 2, 60.0)
    path = str(write(tmp_path, {"markets": {"HK": {"confirm": 4}}}))
    config = replace(flow, thresholds_file=path).thresholds()
    assert config.for_security("HK.00700") == DetectorParams(120.0, 1.0, 0.05, 4, 60.0)
    assert config.for_security("US.AAPL").confirm == 2
    assert ThresholdConfig.load(path).for_security("HK.1").confirm == 4


def test_bad_option_values_name_the_options() -> None:
    with pytest.raises(ThresholdConfigError, match=r"^options: .*finite"):
        FlowSettings(theta_abs=float("inf")).thresholds()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"securities": {"XX.00700": {}}}, r"securities: 'XX.00700': unknown market 'XX'"),
        ({"securities": {"HK.00 700": {}}}, r"securities: 'HK.00 700': invalid code"),
        ({"securities": {"HK.": {}}}, r"securities: 'HK.': invalid code"),
        ({"markets": {"XX": {"confirm": 3}}}, r"markets: unknown market 'XX'"),
        ({"markets": {"CN": {}}}, r"markets: unknown market 'CN'"),
        (
            {"securities": {"HK.00700": {}, "hk.00700": {"confirm": 3}}},
            r"'HK.00700' and 'hk.00700' both name HK.00700",
        ),
        ({"markets": {"HK": {}, "hk": {}}}, r"'HK' and 'hk' both name HK"),
    ],
)
def test_file_rejects_what_the_watchlist_rejects(
    tmp_path: Path, data: object, message: str
) -> None:
    path = write(tmp_path, data)
    with pytest.raises(ThresholdConfigError, match=message):
        ThresholdConfig.load(path)


def test_keys_are_read_as_the_watchlist_spells_them(tmp_path: Path) -> None:
    path = write(
        tmp_path, {"markets": {"us": {"confirm": 4}}, "securities": {"hk.00700": {"confirm": 3}}}
    )
    config = ThresholdConfig.load(path)
    assert config.for_security("HK.00700").confirm == 3
    assert config.for_security("US.AAPL").confirm == 4
    assert config.for_security("HK.09988").confirm == 2


def test_unusable_security_is_a_clear_error() -> None:
    with pytest.raises(ThresholdConfigError, match="unknown market 'XX'"):
        ThresholdConfig().for_security("XX.00700")
