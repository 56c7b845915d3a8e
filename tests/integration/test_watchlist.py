"""The live watchlist end to end: a worker whose watchlist file gains and loses a security
while it runs, and one that follows a watchlist group the simulator serves (3213).

The simulator counts every quote request per security, so "the removed security gets no
more requests" is counted at the source; the snapshots are read from the real broker.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord

from streams.devtools import metric_value
from streams.kafka.topics import ensure_topics
from streams.opend.framing import PROTO_QOT_GET_CAPITAL_DISTRIBUTION as DIST
from streams.opend.framing import PROTO_QOT_GET_CAPITAL_FLOW as FLOW
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from tests.integration.harness import (
    Topics,
    read_topic,
    run_cli,
    start_scenario_sim,
    start_worker,
    wait_for,
    workers_stopped,
)
from tests.integration.test_gateways import status

pytestmark = pytest.mark.integration

FAST = ["--rate-limit-requests", "100", "--rate-limit-window", "10", "--no-leader-grace"]
LIVE = ["--watchlist-refresh", "1", *FAST]


def write_atomically(path: Path, text: str) -> None:
    """Replace the file in one step, as a deployment should (a reader never sees half)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def test_a_security_added_to_the_file_is_polled_and_a_removed_one_no_more(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    sim, scenario = await start_scenario_sim()
    sim.clock.set(scenario.start + 600, speed=1.0)  # 09:40, the market open
    counts = sim.security_counts
    topics = Topics(topic_prefix)
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, topics.all(), 3)
    watchlist = tmp_path / "watchlist.txt"
    watchlist.write_text("# HK names\nHK.00700\nHK.09988\n")
    worker = start_worker(
        kafka_bootstrap, topics, f"capflow-{uuid.uuid4().hex[:8]}", tmp_path,
        opend_port=sim.port, watchlist=[], extra=["--watchlist-file", str(watchlist), *LIVE],
    )  # fmt: skip
    try:
        with workers_stopped(worker):
            await wait_for(
                lambda: counts[(DIST, "HK.00700")] > 0 and counts[(DIST, "HK.09988")] > 0,
                120,
                "both securities of the file polled",
            )
            write_atomically(watchlist, "HK.00700\n# HK.09988 sold\nHK.01810\n")
            await worker.wait_output(
                "watchlist changed: 1 added (HK.01810), 1 removed (HK.09988)", 30
            )
            # Both budgets' loops have passed any request chosen before the change once
            # each has asked for the new security.
            await wait_for(
                lambda: counts[(DIST, "HK.01810")] > 0 and counts[(FLOW, "HK.01810")] > 0,
                30,
                "the added security polled",
            )
            removed = (counts[(DIST, "HK.09988")], counts[(FLOW, "HK.09988")])
            added = counts[(DIST, "HK.01810")]
            await wait_for(
                lambda: counts[(DIST, "HK.01810")] >= added + 20, 60, "20 more polls of it"
            )
            assert (counts[(DIST, "HK.09988")], counts[(FLOW, "HK.09988")]) == removed
            assert removed[0] > 0

            def named(records: list[ConsumerRecord]) -> list[int]:
                return [
                    DistributionSnapshot.FromString(r.value).capital_flow_ref_ms
                    for r in records
                    if r.key == b"HK.01810"
                ]

            # A new security has no flow yet: the history budget went to it, and its
            # snapshots from then on name that series.
            records = await read_topic(
                kafka_bootstrap,
                topics.distribution,
                until=lambda got: any(ref > 0 for ref in named(got)),
                timeout=30,
            )
            assert any(ref > 0 for ref in named(records))
            text = worker.metrics()
            assert metric_value(text, "capflow_watchlist_changes_total", 'change="added"') == 1
            assert metric_value(text, "capflow_watchlist_changes_total", 'change="removed"') == 1
            assert metric_value(text, "capflow_watchlist_securities") == 2
            assert worker.proc.poll() is None, "the worker died:\n" + worker.tail()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker.tail(60)}") from None
    finally:
        await sim.stop()


async def test_a_worker_follows_a_watchlist_group_of_the_simulator(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    sim, scenario = await start_scenario_sim()
    sim.clock.set(scenario.start + 600, speed=1.0)
    counts = sim.security_counts
    sim.user_groups["Tech"] = ["HK.00700"]
    topics = Topics(topic_prefix)
    try:
        # A group the account does not have is refused at start (exit 2), before Kafka.
        code, _out, err = await run_cli(
            "worker", "--watchlist-group", "Nope", "--opend-port", str(sim.port),
            "--kafka-bootstrap", kafka_bootstrap,
        )  # fmt: skip
        assert code == 2, err
        assert "--watchlist-group 'Nope': OpenD has no such watchlist group" in err
        await ensure_topics({"bootstrap_servers": kafka_bootstrap}, topics.all(), 3)
        worker = start_worker(
            kafka_bootstrap, topics, f"capflow-{uuid.uuid4().hex[:8]}", tmp_path,
            opend_port=sim.port, watchlist=[], extra=["--watchlist-group", "Tech", *LIVE],
        )  # fmt: skip
        with workers_stopped(worker):
            await wait_for(lambda: counts[(DIST, "HK.00700")] > 0, 120, "the group polled")
            assert counts[(DIST, "HK.09988")] == 0
            sim.user_groups["Tech"] = ["HK.00700", "HK.09988"]  # added in the app
            await wait_for(lambda: counts[(DIST, "HK.09988")] > 0, 30, "the added one polled")
            del sim.user_groups["Tech"]  # the group deleted in the app: a warning
            await worker.wait_output("watchlist group not re-read", 30)
            listed = status(worker)["watchlist"]  # /status/ says which source fails and why
            assert listed["securities"] == 2
            assert "no such watchlist group" in listed["failing"]["group"]
            polled = counts[(DIST, "HK.09988")]
            await wait_for(
                lambda: counts[(DIST, "HK.09988")] >= polled + 10, 30, "the last good list polled"
            )
            assert "no such watchlist group" in worker.log_text()
            assert worker.proc.poll() is None, "the worker died:\n" + worker.tail()
    finally:
        await sim.stop()
