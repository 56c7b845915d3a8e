"""The gateway pool against the real broker and simulated gateways: ownership from the
gateway group, handover after kill -9 within every gateway's budget, a refused gateway's
securities moving to the others and back, a sick one's too (and one security's refusals
never making a gateway sick), down within --gateway-down-after."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from streams.broker.local import free_port
from streams.kafka.topics import ensure_topics
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.opend_sim.scenario import load_scenario
from streams.opend_sim.server import OpenDSimulator
from streams.polling import spread
from tests.integration.harness import (
    DATA,
    RequestLog,
    Topics,
    Worker,
    capflow,
    metric,
    read_to_end,
    start_worker,
    wait_for,
    workers_stopped,
)

pytestmark = pytest.mark.integration

WATCHLIST = ["HK.00700", "HK.09988", "HK.03690", "HK.01810"]
# The budget scaled down on both sides: 10 requests per 5 s at the simulators, and the
# same limit and window at the workers.
LIMIT, WINDOW = 10, 5.0
LIMITS = ["--rate-limit-requests", str(LIMIT), "--rate-limit-window", str(WINDOW)]
SESSION = ["--session-timeout", "6"]


async def _gateways(count: int, ports: list[int] | None = None) -> list[OpenDSimulator]:
    """Simulated gateways sharing one market and clock, each with its own budget."""
    scenario = load_scenario(DATA / "failover.json")
    market = MarketModel(scenario, seed=5)
    clock = SimClock(start=scenario.start, speed=1.0)
    sims = []
    for i in range(count):
        port = ports[i] if ports else 0
        sim = OpenDSimulator(
            market, clock, port=port, rate_limit_requests=LIMIT, rate_limit_window=WINDOW
        )
        sims.append(sim)
    for sim in sims:
        await sim.start()
    return sims


def status(w: Worker) -> dict[str, Any]:
    return w.status()


def owned(w: Worker) -> set[str]:
    return {g["gateway"] for g in status(w).get("gateways", []) if g["owned"]}


def opend_arg(sims: list[OpenDSimulator]) -> list[str]:
    return ["--opend", ",".join(f"127.0.0.1:{s.port}=g{i + 1}" for i, s in enumerate(sims))]


async def test_two_workers_two_gateways_handover_after_kill9_within_budget(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    sims = await _gateways(2)
    logs = {f"g{i + 1}": RequestLog(sim) for i, sim in enumerate(sims)}
    topics = Topics(topic_prefix)
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, list(topics.names.values()), 3)
    app_id = f"capflow-{uuid.uuid4().hex[:8]}"
    extra = [*opend_arg(sims), *LIMITS, *SESSION, "--gateway-topic", f"{topic_prefix}.gateways"]
    w1 = start_worker(kafka_bootstrap, topics, app_id, tmp_path, name="w1",
                      watchlist=WATCHLIST, extra=extra)  # fmt: skip
    w2 = start_worker(kafka_bootstrap, topics, app_id, tmp_path, name="w2",
                      watchlist=WATCHLIST, extra=extra)  # fmt: skip
    try:
        with workers_stopped(w1, w2):
            await wait_for(
                lambda: len(owned(w1)) == 1 and len(owned(w2)) == 1,
                120,
                "each worker to own one gateway",
            )
            owner = {label: (w1 if label in owned(w1) else w2) for label in logs}
            steady = time.monotonic()
            shares = {label: set(spread.share(WATCHLIST, ["g1", "g2"], label)) for label in logs}
            await wait_for(
                lambda: all(log.codes(steady) >= shares[label] for label, log in logs.items()),
                60,
                "each gateway's share polled",
            )
            for label, log in logs.items():
                # Exactly one worker polls each gateway, and it polls the gateway's share.
                assert log.pids(steady) == {owner[label].proc.pid}, (label, log.pids(steady))
                assert log.codes(steady) == shares[label]

            victim, survivor = owner["g1"], owner["g2"]
            victim.kill()  # SIGKILL: no goodbye to the group
            killed = time.monotonic()
            await wait_for(
                lambda: survivor.proc.pid in logs["g1"].pids(killed),
                90,
                "the survivor to take gateway g1 over",
            )
            taken = time.monotonic()
            # The survivor now polls the whole watchlist (the spread did not change).
            await wait_for(
                lambda: logs["g1"].codes(taken) | logs["g2"].codes(taken) == set(WATCHLIST),
                30,
                "the whole watchlist polled by the survivor",
            )
            assert owned(survivor) == {"g1", "g2"}
            assert survivor.proc.poll() is None, survivor.tail()
    finally:
        for sim in sims:
            await sim.stop()
    for label, log in logs.items():
        # The simulators' own counts: never over the limit, never refused.
        assert log.refused == 0, label
        assert log.max_in_window(WINDOW) <= LIMIT, (label, log.max_in_window(WINDOW))
        # One worker at a time: from the steady split on, each gateway changes hands at
        # most once (the kill). Before it a worker that joined the group first may have
        # polled both gateways for a moment: a handover too, within the budget above.
        runs = log.owner_runs(steady)
        assert len(runs) == len(set(runs)), (label, runs)
    assert logs["g1"].owner_runs()[-1] == survivor.proc.pid
    assert victim.proc.pid in logs["g1"].owner_runs()
    # A silent member is replaced after the session timeout, and its successor then
    # waits out one window before its first request.
    first_after = min(
        t for t, pid, _ in logs["g1"].requests if pid == survivor.proc.pid and t > killed
    )
    assert first_after - killed >= WINDOW


async def test_refused_gateway_moves_its_securities_and_gets_them_back(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    (up,) = await _gateways(1)
    down_port = free_port()  # nothing listens here yet
    logs = {"g1": RequestLog(up)}
    topics = Topics(topic_prefix)
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, list(topics.names.values()), 3)
    extra = [
        "--opend", f"127.0.0.1:{up.port}=g1,127.0.0.1:{down_port}=g2", *LIMITS,
        "--gateway-down-after", "2", "--no-leader-grace",
        "--gateway-topic", f"{topic_prefix}.gateways",
    ]  # fmt: skip
    w = start_worker(kafka_bootstrap, topics, f"capflow-{uuid.uuid4().hex[:8]}", tmp_path,
                     watchlist=WATCHLIST, extra=extra)  # fmt: skip
    returned: list[OpenDSimulator] = []
    try:
        with workers_stopped(w):
            # g2 refuses connections: after two seconds it is down and g1 polls everything.
            await wait_for(lambda: logs["g1"].codes() == set(WATCHLIST), 90, "g1 to poll all")
            gw = {g["gateway"]: g for g in status(w)["gateways"]}
            assert gw["g2"]["up"] is False and gw["g2"]["securities"] == []
            assert gw["g2"]["last_error"]  # why it counts as down
            assert gw["g1"]["owned"] and gw["g1"]["securities"] == WATCHLIST
            # The default schedule is adaptive: one flow feed serves every gateway's scheduler.
            assert status(w)["schedule"] == "adaptive"
            await wait_for(lambda: (status(w).get("flows_read") or 0) > 0, 60, "flows read back")
            # The same per gateway in Prometheus.
            assert metric(w.web_port, "capflow_gateway_up", 'gateway="g2"') == 0
            assert metric(w.web_port, "capflow_gateway_up", 'gateway="g1"') == 1
            assert metric(w.web_port, "capflow_gateway_securities", 'gateway="g1"') == 4
            ok_g1 = 'gateway="g1",outcome="ok"'
            assert metric(w.web_port, "capflow_gateway_requests_total", ok_g1) > 0
            # g2 comes back: its share returns to it, g1 drops it.
            returned.append((await _gateways(1, [down_port]))[0])
            logs["g2"] = RequestLog(returned[0])
            await wait_for(lambda: bool(logs["g2"].requests), 60, "g2 to be polled again")
            back = time.monotonic()
            share2 = set(spread.share(WATCHLIST, ["g1", "g2"], "g2"))
            # A full round of the watchlist from g1 a second on: time to have dropped share2.
            await wait_for(
                lambda: (
                    logs["g2"].codes(back) >= share2
                    and len([t for t, _, _ in logs["g1"].requests if t >= back + 1])
                    >= len(WATCHLIST)
                ),
                30,
                "g2 to poll its share and g1 a full round",
            )
            assert logs["g2"].codes(back) == share2
            assert logs["g1"].codes(back + 1) == set(WATCHLIST) - share2
            assert w.proc.poll() is None, w.tail()
    finally:
        for sim in [up, *returned]:
            await sim.stop()
    for label, log in logs.items():
        assert log.refused == 0, label
        assert log.max_in_window(WINDOW) <= LIMIT, label


# A gateway that accepts connections but fails every quote request, in words that name no
# security (so the worker cannot tell it from a passing fault but by its length).
SICK_TEXT = "系统内部错误 (internal error: quote server unavailable)"
SICK_AFTER = 5.0
PROBE_EVERY = 5.0  # the health policy's
SPACING = (WINDOW + 0.5) / LIMIT  # about the workers' request spacing at LIMITS
NINE = [*WATCHLIST, "HK.00005", "HK.00388", "HK.02318", "HK.01299", "HK.00941"]


@contextlib.asynccontextmanager
async def one_worker(
    bootstrap: str, prefix: str, tmp_path: Path, count: int, watchlist: list[str], *flags: str
) -> AsyncIterator[tuple[list[OpenDSimulator], dict[str, RequestLog], Worker]]:
    """``count`` simulated gateways (g1, g2, ...) and one worker polling them all, with no
    handover grace; all stopped when the block ends."""
    sims = await _gateways(count)
    logs = {f"g{i + 1}": RequestLog(sim) for i, sim in enumerate(sims)}
    try:
        topics = Topics(prefix)
        await ensure_topics({"bootstrap_servers": bootstrap}, list(topics.names.values()), 3)
        extra = [*opend_arg(sims), *LIMITS, "--no-leader-grace", "--gateway-topic",
                 f"{prefix}.gateways", *flags]  # fmt: skip
        w = start_worker(bootstrap, topics, f"capflow-{uuid.uuid4().hex[:8]}", tmp_path,
                         watchlist=watchlist, extra=extra)  # fmt: skip
        with workers_stopped(w):
            yield sims, logs, w
    finally:
        for sim in sims:
            await sim.stop()


def gateway_view(w: Worker) -> dict[str, dict[str, Any]]:
    return {g["gateway"]: g for g in status(w).get("gateways", [])}


def gateway_records(records: list[Any], label: str) -> list[dict[str, Any]]:
    """The statuses of one gateway on the control topic, in order."""
    return [json.loads(r.value) for r in records if r.key == label.encode()]


async def test_a_sick_gateway_gives_its_securities_away_and_gets_them_back(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    sick_after = ("--gateway-sick-after", str(SICK_AFTER))
    gateways = one_worker(kafka_bootstrap, topic_prefix, tmp_path, 3, NINE, *sick_after)
    async with gateways as (sims, logs, w):
        labels = list(logs)
        share = {label: set(spread.share(NINE, labels, label)) for label in labels}
        g1, g2, g3 = (logs[label] for label in labels)
        await wait_for(
            lambda: all(logs[x].answered_codes() == share[x] for x in labels),
            120,
            "each gateway to poll its share",
        )
        sims[1].error_replies.update({3212: SICK_TEXT, 3211: SICK_TEXT})
        fault = time.monotonic()
        # g2's securities get snapshots from g1 and g3 within sick_after + a few seconds.
        await wait_for(
            lambda: share["g2"] <= g1.answered_codes(fault) | g3.answered_codes(fault),
            SICK_AFTER + 30,
            "g2's securities answered by g1 and g3",
        )
        assert time.monotonic() - fault <= SICK_AFTER + 4.0
        view = gateway_view(w)
        assert view["g2"]["state"] == "sick" and view["g2"]["up"] is False
        assert "quote server unavailable" in view["g2"]["state_reason"]
        assert view["g2"]["securities"] == []
        assert view["g2"]["health"]["failures"]["error"] > 0
        assert metric(w.web_port, "capflow_gateway_state", 'gateway="g2",state="sick"') == 1
        assert metric(w.web_port, "capflow_gateway_state", 'gateway="g1",state="up"') == 1
        # Sick, it is probed every few seconds within its budget, and its capital-flow loop
        # spends nothing on securities it no longer has.
        flows = sims[1].counts[3211]
        sick_seen = time.monotonic()
        await wait_for(lambda: len(g2.times_from(sick_seen)) >= 2, 30, "two probes of g2")
        probes = g2.times_from(sick_seen)
        assert probes[1] - probes[0] >= PROBE_EVERY - 0.5, probes
        assert sims[1].counts[3211] == flows
        sims[1].error_replies.clear()
        healed = time.monotonic()
        # Back after the next probe, its whole share at once: no backoff left over.
        await wait_for(lambda: share["g2"] <= g2.answered_codes(healed), 60, "g2's share")
        assert time.monotonic() - healed <= PROBE_EVERY + SPACING * len(NINE) + 3.0
        view = gateway_view(w)
        assert view["g2"]["state"] == "up" and view["g2"]["backed_off"] == []
        assert set(view["g2"]["securities"]) == share["g2"]
        back = time.monotonic()
        await wait_for(lambda: len(g1.times_from(back + 1)) >= 3, 30, "g1 to poll on")
        assert not (g1.codes(back + 1) | g3.codes(back + 1)) & share["g2"]
        records = await read_to_end(kafka_bootstrap, f"{topic_prefix}.gateways")
        states = [r["state"] for r in gateway_records(records, "g2")]
        assert states[-2:] == ["sick", "up"], states
    for label, log in logs.items():
        assert log.max_in_window(WINDOW) <= LIMIT, label
    assert g1.refused == g3.refused == 0


def _indices_only_on(label: str, labels: list[str]) -> list[str]:
    """A watchlist whose share on ``label`` is only index codes (OpenD answers them
    "not supported"), the other gateways' only stocks."""
    stocks = ["HK.00700", "HK.09988", "HK.03690", "HK.01810", "HK.00005", "HK.00388"]
    indices = [f"HK.8000{n:02d}" for n in range(20)]
    for pair in itertools.combinations(indices, 2):
        for others in itertools.combinations(stocks, 2):
            watchlist = [*others, *pair]
            if set(spread.share(watchlist, labels, label)) == set(pair):
                return watchlist
    raise AssertionError("no such watchlist")


async def test_one_securitys_refusals_never_make_a_gateway_sick(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    watchlist = _indices_only_on("g2", ["g1", "g2"])
    refused_share = set(spread.share(watchlist, ["g1", "g2"], "g2"))
    sick_after = ("--gateway-sick-after", str(SICK_AFTER))
    gateways = one_worker(kafka_bootstrap, topic_prefix, tmp_path, 2, watchlist, *sick_after)
    async with gateways as (_sims, logs, w):
        # Every request g2 makes is refused for its security.
        await wait_for(lambda: logs["g2"].codes() == refused_share, 120, "g2's refusals")
        assert logs["g2"].answered == [] and logs["g2"].refused >= 2
        refused = max(logs["g2"].times)
        # Longer than sick_after later (while g1 keeps polling), g2 is up, keeps its share.
        later = refused + SICK_AFTER + 2.0
        await wait_for(lambda: logs["g1"].times_from(later), 60, "sick_after to pass")
        view = gateway_view(w)
        assert view["g2"]["state"] == "up" and view["g2"]["up"] is True
        assert set(view["g2"]["securities"]) == refused_share
        assert {b["kind"] for b in view["g2"]["backed_off"]} == {"unsupported"}
        assert view["g2"]["health"]["failing_for_s"] is None
        records = await read_to_end(kafka_bootstrap, f"{topic_prefix}.gateways")
        assert {r["state"] for r in gateway_records(records, "g2")} == {"up"}
        assert metric(w.web_port, "capflow_gateway_state", 'gateway="g2",state="up"') == 1


async def test_a_gateway_that_goes_away_is_down_within_down_after(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    down_after = 4.0
    flags = ("--gateway-down-after", str(down_after))
    gateways = one_worker(kafka_bootstrap, topic_prefix, tmp_path, 2, WATCHLIST, *flags)
    async with gateways as (sims, logs, w):
        await wait_for(lambda: all(log.answered for log in logs.values()), 120, "polling")
        stopped = time.time()
        await sims[1].stop()  # gone: connections closed, new ones refused
        await wait_for(lambda: gateway_view(w)["g2"]["up"] is False, 30, "g2 down")
        records = await read_to_end(kafka_bootstrap, f"{topic_prefix}.gateways")
        down = [r for r in gateway_records(records, "g2") if r["state"] == "down"]
        assert down and down[0]["since"] - stopped <= down_after + 1.0, down
        assert down[0]["since"] - stopped >= down_after - 0.5  # not at the first refusal
        assert "no connection for" in down[0]["reason"]


async def test_opend_sim_serves_several_gateways_each_with_its_own_budget(tmp_path: Path) -> None:
    """``capflow opend-sim --gateways 3``: three ports, one market, three budgets."""
    from streams.broker.local import port_open
    from streams.opend.client import OpenDClient
    from streams.opend.errors import RateLimitError

    first = next(
        p for p in (free_port() for _ in range(50))
        if not port_open("127.0.0.1", p + 1) and not port_open("127.0.0.1", p + 2)
    )  # fmt: skip
    with capflow(
        "opend-sim", "--port", str(first), "--gateways", "3", "--speed", "0",
        "--rate-limit-requests", "2", "--rate-limit-window", "60", log=tmp_path / "sim.log",
    ) as sim:  # fmt: skip
        for i in range(3):
            await sim.wait_output(f"gateway {i} listening on 127.0.0.1:{first + i} ", 30)
        clients = [OpenDClient("127.0.0.1", first + i, timeout=5) for i in range(3)]
        try:
            for c in clients:
                await c.ensure_connected(3)
            # Gateway 0 spends its whole budget; the others still have all of theirs.
            for _ in range(2):
                await clients[0].get_capital_distribution("HK.00700")
            with pytest.raises(RateLimitError):
                await clients[0].get_capital_distribution("HK.00700")
            for c in clients[1:]:
                a = await c.get_capital_distribution("HK.00700")
                b = await c.get_capital_distribution("HK.00700")
                assert a.update_timestamp == b.update_timestamp  # one shared, frozen clock
                with pytest.raises(RateLimitError):
                    await c.get_capital_distribution("HK.00700")
        finally:
            for c in clients:
                await c.close()
