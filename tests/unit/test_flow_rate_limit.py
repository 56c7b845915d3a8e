"""Capital flow's (3211) own rate limit: settings, flags and the simulator's quota."""

from __future__ import annotations

import pytest

from streams import cli
from streams.commands.opend_sim import build_simulators
from streams.settings import PipelineSettings, PollerSettings
from streams.settings.declare import SettingError, declarations
from streams.settings.flags import from_args

DECLARED = {d.field: d for d in declarations(PollerSettings)}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RATE_LIMIT_REQUESTS", "RATE_LIMIT_WINDOW"):
        monkeypatch.delenv(f"CAPFLOW_{name}", raising=False)
        monkeypatch.delenv(f"CAPFLOW_FLOW_{name}", raising=False)


def test_defaults_are_thirty_per_thirty_seconds_apart_from_3212s() -> None:
    assert DECLARED["flow_rate_limit_requests"].default == 30
    assert DECLARED["flow_rate_limit_window"].default == 30.0
    assert "separate from capital distribution's" in DECLARED["flow_rate_limit_requests"].help
    config = from_args(cli.build_parser().parse_args(["worker"]), PipelineSettings)
    assert (config.poller.flow_rate_limit_requests, config.poller.flow_rate_limit_window) == (
        30,
        30.0,
    )


def test_flags_and_environment_land_in_the_poller_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAPFLOW_FLOW_RATE_LIMIT_WINDOW", "45")
    args = cli.build_parser().parse_args(
        ["worker", "--flow-rate-limit-requests", "10", "--rate-limit-requests", "20"]
    )
    poller = from_args(args, PollerSettings)
    assert (poller.flow_rate_limit_requests, poller.flow_rate_limit_window) == (10, 45.0)
    assert (poller.rate_limit_requests, poller.rate_limit_window) == (20, 30.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [("CAPFLOW_FLOW_RATE_LIMIT_REQUESTS", "0"), ("CAPFLOW_FLOW_RATE_LIMIT_WINDOW", "inf")],
)
def test_non_positive_limits_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match=name):
        cli.build_parser()


def test_opend_sim_gives_every_gateway_both_quotas() -> None:
    args = cli.build_parser().parse_args(
        ["opend-sim", "--port", "21000", "--gateways", "2", "--rate-limit-requests", "5",
         "--flow-rate-limit-requests", "7", "--flow-rate-limit-window", "12.5"]
    )  # fmt: skip
    for sim in build_simulators(args):
        assert (sim.rate_limit_requests, sim.rate_limit_window) == (5, 30.0)
        assert (sim.flow_rate_limit_requests, sim.flow_rate_limit_window) == (7, 12.5)
        assert sim._account_limiters[3211] is not sim._account_limiters[3212]
