"""Minute history end to end: a worker that starts after the open, and a hole in polling.

The simulator serves capital flow (3211) from the same market model as capital
distribution (3212); the worker spends each gateway's second budget on it, publishes
each series on the capital-flow topic and folds it into its flow state. Scripted
reversals (tests/data/reversals.json: HK.00700 flips at 09:45 and 10:05, HK.09988 at
09:50, HK.01810 stays quiet) give the exact alerts to expect.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.kafka.topics import ensure_topics
from streams.opend.framing import PROTO_QOT_GET_CAPITAL_DISTRIBUTION, PROTO_QOT_GET_CAPITAL_FLOW
from streams.pb.capflow.v1.capital_flow_pb2 import CapitalFlowSeries
from tests.integration.harness import (
    FAST_LIMIT,
    Topics,
    alerts_of,
    expected_reversals,
    read_topic,
    start_scenario_sim,
    start_worker,
    wait_for,
    workers_stopped,
)

pytestmark = pytest.mark.integration

SPEED = 100.0  # simulated seconds per wall second
WINDOW = 300.0
WATCHLIST = ["HK.00700", "HK.09988", "HK.01810"]


async def _run(
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    start_at: float,
    end_at: float,
    during: Any = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[CapitalFlowSeries], Any]:
    """A worker polling the scenario from ``start_at`` (seconds after the open) until
    ``end_at``; ``during(sim, scenario)`` runs while the simulated clock goes. The alerts,
    flows and capital-flow series it published, and the simulator."""
    sim, scenario = await start_scenario_sim()
    sim.clock.set(scenario.start + start_at, speed=0.0)  # frozen until the worker polls
    topics = Topics(topic_prefix)
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, topics.all(), 3)
    worker = start_worker(
        kafka_bootstrap, topics, f"capflow-{uuid.uuid4().hex[:8]}", tmp_path,
        opend_port=sim.port, watchlist=WATCHLIST, extra=[*FAST_LIMIT, "--opend-timeout", "0.5"],
    )  # fmt: skip
    try:
        with workers_stopped(worker):
            await wait_for(
                lambda: sim.counts[PROTO_QOT_GET_CAPITAL_DISTRIBUTION] > 0, 120, "a first poll"
            )
            sim.clock.set(scenario.start + start_at, speed=SPEED)
            if during is not None:
                await during(sim, scenario)
            await wait_for(
                lambda: sim.clock.now() >= scenario.start + end_at, 300, "the end of the run"
            )
            settle = time.monotonic() + 3.0
            alerts = alerts_of(
                await read_topic(
                    kafka_bootstrap,
                    topics.alerts,
                    until=lambda _: time.monotonic() > settle,
                    timeout=30,
                )
            )
            flows = [
                orjson.loads(r.value)
                for r in await read_topic(
                    kafka_bootstrap, topics.flow, until=lambda r: len(r) >= 20, timeout=30
                )
            ]
            series = [
                CapitalFlowSeries.FromString(r.value)
                for r in await read_topic(
                    kafka_bootstrap, topics.capitalflow, until=lambda r: len(r) >= 3, timeout=30
                )
            ]
            assert worker.proc.poll() is None, "the worker died:\n" + worker.tail()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker.tail(60)}") from None
    finally:
        await sim.stop()
    return alerts, flows, series, (sim, scenario)


def _brief(alerts: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    return sorted(
        (a["subject"], a["data"]["direction"], a["data"]["found_in_history"]) for a in alerts
    )


async def test_a_worker_started_after_the_open_alerts_only_what_comes_after(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Started at 10:00: the reversals of 09:45 and 09:50 are the past (no alert); the
    minute history sets the regimes, so the 10:05 reversal is alerted, once."""
    start = 1800.0
    alerts, flows, series, (sim, scenario) = await _run(
        kafka_bootstrap, topic_prefix, tmp_path, start, 2700.0
    )
    want = [r for r in expected_reversals(scenario) if r.at > start]
    assert [(r.security, r.direction) for r in want] == [("HK.00700", "outflow_to_inflow")]
    assert _brief(alerts) == [("HK.00700", "outflow_to_inflow", False)], alerts
    flip = want[0].epoch
    assert flip < alerts[0]["data"]["event_ts"] <= flip + WINDOW + 120

    # History came for every security, on its own budget, before the first window was up.
    assert {s.security for s in series} == set(WATCHLIST)
    assert sim.counts[PROTO_QOT_GET_CAPITAL_FLOW] >= len(WATCHLIST)
    assert all(s.rows and s.rows[0].timestamp == scenario.start for s in series)
    # No flow measured R_W against the whole day: none until history, then minutes.
    first_window = [f for f in flows if f["event_ts"] < scenario.start + start + WINDOW]
    assert first_window and {f["baseline"] for f in first_window} <= {"none", "minute"}
    assert any(f["baseline"] == "minute" for f in first_window)
    # The regimes the minute history set: HK.00700 sells since 09:45, HK.09988 buys since 09:50.
    regime = {f["security"]: f["regime"] for f in first_window if f["baseline"] == "minute"}
    assert regime.get("HK.00700") == "OUTFLOW" and regime.get("HK.09988") == "INFLOW", regime


async def test_a_reversal_inside_a_hole_in_polling_is_found_in_history(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """OpenD answers nothing from 09:49 to 10:02 (13 minutes, more than 2W): HK.09988's
    09:50 reversal happens in the hole. Minute history finds it, once, at the minute it
    was confirmed; the reversals before and after the hole are alerted live."""
    hole = (1140.0, 1920.0)

    async def outage(sim: Any, scenario: Any) -> None:
        await wait_for(lambda: sim.clock.now() >= scenario.start + hole[0], 60, "the hole")
        sim.silent_proto_ids.update(
            {PROTO_QOT_GET_CAPITAL_DISTRIBUTION, PROTO_QOT_GET_CAPITAL_FLOW}
        )
        await wait_for(lambda: sim.clock.now() >= scenario.start + hole[1], 60, "its end")
        sim.silent_proto_ids.clear()

    alerts, flows, _series, (_sim, scenario) = await _run(
        kafka_bootstrap, topic_prefix, tmp_path, 0.0, 2700.0, during=outage
    )
    # Each reversal once. HK.09988's fell in the hole: found in history. HK.00700's first
    # (09:45) is alerted live, or found in history when its confirming poll would have
    # come after 09:49 (a busy machine); its second (10:05) comes after the hole.
    assert [(s, d) for s, d, _ in _brief(alerts)] == [
        ("HK.00700", "inflow_to_outflow"),
        ("HK.00700", "outflow_to_inflow"),
        ("HK.09988", "outflow_to_inflow"),
    ], alerts
    # The outage begins when the test sees the simulated clock pass 09:49 (it looks every
    # 0.2 s wall, 20 s simulated): a minute later nothing can have been polled live.
    opened, closed = scenario.start + hole[0], scenario.start + hole[1]
    for alert in alerts:
        data = alert["data"]
        if data["found_in_history"]:
            assert opened - 60 < data["event_ts"] < closed, alert
        elif opened + 60 < data["event_ts"] < closed:
            raise AssertionError(f"alerted live inside the hole: {alert}")
    found = next(a for a in alerts if a["subject"] == "HK.09988")
    assert found["data"]["found_in_history"], found
    flip = next(r.epoch for r in expected_reversals(scenario) if r.security == "HK.09988")
    event = found["data"]["event_ts"]
    assert flip < event < scenario.start + hole[1] and event % 60 == 0  # a minute in the hole
    assert len({a["id"] for a in alerts}) == len(alerts)
    after = [f for f in flows if f["event_ts"] > scenario.start + hole[1]]
    assert "none" in {f["baseline"] for f in after}  # the hole was too long for a baseline
