"""`capflow fetch` against the simulator: exact numbers, clear errors, exit codes."""

from __future__ import annotations

import orjson
import pytest

from streams.broker.local import free_port
from tests.integration.harness import run_cli, start_scenario_sim

pytestmark = pytest.mark.integration


async def test_fetch_prints_the_model_values_and_reports_unknown_codes() -> None:
    sim, scenario = await start_scenario_sim()
    sim.clock.set(scenario.start + 1234, speed=0.0)
    try:
        code, out, err = await run_cli(
            "fetch", "HK.00700", "HK.99999", "HK.09988", "--json",
            "--opend-port", str(sim.port),
        )  # fmt: skip
    finally:
        await sim.stop()
    assert code == 1, err  # one security failed
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [r["security"] for r in rows] == ["HK.00700", "HK.09988"]
    for row in rows:
        want = sim.market.distribution(row["security"], scenario.start + 1234)
        assert row["capital_in_big"] == want.capital_in_big
        assert row["capital_out_super"] == want.capital_out_super
        assert row["update_timestamp"] == want.update_timestamp
        assert row["trading_day"] == "2024-06-03"
    assert "HK.99999" in err and "unknown" in err.lower()


async def test_fetch_explains_bad_codes_and_a_missing_opend() -> None:
    code, _, err = await run_cli("fetch", "00700")
    assert code == 2 and "00700" in err
    code, _, err = await run_cli("fetch", "HK.00700", "--opend-port", str(free_port()))
    assert code == 1 and "cannot connect" in err
