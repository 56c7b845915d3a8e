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


async def test_fetch_capital_flow_prints_the_minutes_of_the_model() -> None:
    sim, scenario = await start_scenario_sim()
    now = scenario.start + 1234  # 09:50:34
    sim.clock.set(now, speed=0.0)
    try:
        code, out, err = await run_cli(
            "fetch", "--capital-flow", "HK.00700", "HK.99999", "--opend-port", str(sim.port)
        )
        json_code, json_out, _ = await run_cli(
            "fetch", "--capital-flow", "HK.00700", "--json", "--opend-port", str(sim.port)
        )
    finally:
        await sim.stop()
    want = sim.market.capital_flow("HK.00700", now)
    assert code == 1 and "HK.99999" in err and "unknown" in err.lower()
    lines = out.splitlines()
    assert lines[0] == (
        "HK.00700  capital flow 2024-06-03  lastValidTime 2024-06-03 09:50:34  (22 minutes)"
    )
    minutes = lines[2:]
    assert [line.split()[0] for line in minutes] == [r.time[11:] for r in want.rows]
    last = want.rows[-1]
    values = [last.super_in_flow, last.big_in_flow, last.mid_in_flow, last.sml_in_flow]
    assert minutes[-1].split()[1:6] == [f"{v:+,.2f}" for v in [*values, last.in_flow]]
    assert minutes[-1].endswith("in progress, as of 09:50:34")
    assert "in progress" not in minutes[-2]
    assert json_code == 0
    (record,) = [orjson.loads(line) for line in json_out.splitlines()]
    assert record["trading_day"] == "2024-06-03" and record["source"].startswith("opend://")
    assert record["last_valid_timestamp"] == want.last_valid_timestamp
    assert len(record["rows"]) == 22 and record["rows"][0]["time"] == "2024-06-03 09:30:00"
    assert record["rows"][-1]["big_in_flow"] == last.big_in_flow
    assert record["rows"][-1]["main_in_flow"] is None
    assert sim.counts[3211] == 3 and sim.counts[3212] == 0
