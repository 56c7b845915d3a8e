"""`capflow fetch` against a simulator that answers invalid data: reasons, never data.

Capital distribution (3212) and capital flow (3211, ``--capital-flow``) alike.
"""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from streams.domain.capital_flow import CapitalFlow
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


class DisorderedMarket(HostileMarket):
    """Serves a capital-flow series whose minutes run backwards (HK.00001) or hold NaN."""

    def capital_flow(self, security: str, t: float) -> CapitalFlow:
        good = MarketModel().capital_flow("HK.00700", T0 + 300)
        rows = list(good.rows)
        if security == "HK.00001":
            rows[2], rows[3] = rows[3], rows[2]
        elif security == "HK.00002":
            rows[4] = dataclasses.replace(rows[4], mid_in_flow=float("nan"))
        code = security.split(".")[1]
        return dataclasses.replace(good, security=security, code=code, rows=tuple(rows))


async def test_fetch_capital_flow_reports_invalid_series() -> None:
    sim = OpenDSimulator(DisorderedMarket(), SimClock(T0 + 300, speed=0.0))
    await sim.start()
    try:
        code, out, err = await run_cli(
            "fetch", "--capital-flow", "HK.00001", "HK.00002", "HK.00003", "--json",
            "--opend-port", str(sim.port),
        )  # fmt: skip
    finally:
        await sim.stop()
    assert code == 1, err
    assert [orjson.loads(line)["security"] for line in out.splitlines()] == ["HK.00003"]
    assert "HK.00001: invalid reply: row 3 (2024-06-03 09:32:00) comes before the minute" in err
    assert "HK.00002: invalid reply: row 4 (2024-06-03 09:34:00): mid_in_flow must be finite" in err
    assert "Traceback" not in err
