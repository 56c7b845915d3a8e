"""`capflow fetch` against a simulator that answers invalid data: reasons, never data."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from streams.opend.snapshot import CapitalDistribution
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import Availability, MarketModel
from streams.opend_sim.server import OpenDSimulator
from tests.integration.harness import run_cli

pytestmark = pytest.mark.integration

T0 = 1_717_378_200.0  # 2024-06-03 09:30:00 HKT

# Security -> what is wrong with its reply.
BROKEN: dict[str, dict[str, object]] = {
    "HK.00001": {"capital_in_big": float("nan")},
    "HK.00002": {"capital_out_mid": float("inf")},
    "HK.00003": {"capital_out_big": -5.0},
    "HK.00004": {"update_timestamp": 0.0, "update_time": "1970-01-01 08:00:00"},
    "HK.00005": {"update_timestamp": 4_102_444_800.0, "update_time": "2100-01-01 08:00:00"},
    "HK.00006": {"update_timestamp": T0 * 1000, "update_time": ""},
}


class HostileMarket(MarketModel):
    """Serves every code; the ones in BROKEN answer with one bad field each."""

    def availability(self, security: str) -> Availability:
        return Availability("ok")

    def distribution(self, security: str, t: float) -> CapitalDistribution:
        good = CapitalDistribution(
            security=security, market="HK", qot_market=1, code=security.split(".")[1],
            capital_in_super=1.0, capital_in_big=2.0, capital_in_mid=3.0, capital_in_small=4.0,
            capital_out_super=1.5, capital_out_big=2.5, capital_out_mid=3.5, capital_out_small=4.5,
            update_time="2024-06-03 09:30:00", update_timestamp=T0,
        )  # fmt: skip
        return dataclasses.replace(good, **BROKEN.get(security, {}))  # type: ignore[arg-type]


async def test_fetch_reports_invalid_replies_and_prints_only_valid_data() -> None:
    sim = OpenDSimulator(HostileMarket(), SimClock(T0, speed=0.0), rate_limit_requests=100)
    await sim.start()
    try:
        code, out, err = await run_cli(
            "fetch", *BROKEN, "HK.00700", "--json", "--opend-port", str(sim.port)
        )
    finally:
        await sim.stop()
    assert code == 1, err
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [r["security"] for r in rows] == ["HK.00700"]
    assert rows[0]["capital_in_big"] == 2.0 and rows[0]["trading_day"] == "2024-06-03"
    for security in BROKEN:
        assert f"{security}: invalid reply:" in err, err
    assert "Traceback" not in err
    assert "capital_in_big must be finite" in err
    assert "capital_out_big must be >= 0" in err
    assert "ahead of the clock" in err
