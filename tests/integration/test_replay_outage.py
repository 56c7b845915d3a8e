"""``capflow replay`` reports what the broker confirmed, also when the broker dies mid-replay.

The outage test starts its own broker (never the shared one) and kills it while a
paced replay runs: replay must exit 1 with the count actually confirmed, print no
"Future exception was never retrieved" flood, and every confirmed snapshot must be on
the topic once the broker is back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker.local import LocalKafka, free_port_pair
from streams.devtools import end_offsets
from streams.kafka.topics import ensure_topics
from streams.offline.recording import to_json_line
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from tests.integration.harness import capflow, run_cli, wait_for

pytestmark = pytest.mark.integration

T0 = 1_717_378_200.0  # 2024-06-03 09:30 HKT
SECURITIES = ["HK.00700", "HK.09988", "HK.01810"]


def recording(path: Path, count: int) -> Path:
    """``count`` snapshots, one second of event time apart, round-robin over SECURITIES."""
    with open(path, "wb") as out:
        for i in range(count):
            security = SECURITIES[i % len(SECURITIES)]
            msg = DistributionSnapshot(
                security=security, market="HK", qot_market=1, code=security.split(".")[1],
                capital_in_big=1000.0 * i, update_timestamp=T0 + i, trading_day="2024-06-03",
                source="test",
            )  # fmt: skip
            out.write(to_json_line(msg))
    return path


async def topic_size(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` (sum of end offsets; the topic is never compacted or trimmed)."""
    return sum((await end_offsets(bootstrap, topic)).values())


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    broker = LocalKafka(tmp_path / "kafka", port=free_port_pair())
    broker.start(progress=False)
    try:
        yield broker
    finally:
        broker.stop()


async def test_broker_death_mid_replay_reports_the_confirmed_count(
    own_broker: LocalKafka, tmp_path: Path
) -> None:
    total = 3000
    path = recording(tmp_path / "day.jsonl", total)
    topic = "outage.distribution"
    await ensure_topics({"bootstrap_servers": own_broker.bootstrap}, [topic], 3)
    replay = capflow(
        "replay", str(path), "--kafka-bootstrap", own_broker.bootstrap,
        "--topic-distribution", topic,
        # Two seconds without an acknowledgement is a failure (30 s by default): a local
        # broker acknowledges in milliseconds, and the replay gives up sooner after the kill.
        "--realtime", "--speed", "100", "--send-timeout", "2",
        log=tmp_path / "replay.out", stderr=tmp_path / "replay.err",
    )  # fmt: skip
    with replay:

        async def started() -> bool:
            assert replay.running(), f"replay exited:\n{replay.tail()}"
            return await topic_size(own_broker.bootstrap, topic) >= 200

        await wait_for(started, 60, "200 snapshots on the topic")
        own_broker.kill()
        code = await replay.wait_exit(120)
    out, err = replay.log_text(), replay.stderr_text()

    # Before: exit 0, "replayed 3000 snapshots", and one unretrieved-future log per record.
    assert code == 1, (out, err[-2000:])
    assert out == ""
    assert "Future exception was never retrieved" not in err
    assert "Traceback" not in err
    assert len(err) < 4000, err[-2000:]
    match = re.search(r"Kafka failed after (\d+) of 3000 snapshots were confirmed written", err)
    assert match, err
    confirmed = int(match.group(1))
    assert 200 <= confirmed < total

    own_broker.start(progress=False)
    assert confirmed <= await topic_size(own_broker.bootstrap, topic) < total


async def test_success_is_one_line_with_the_confirmed_count(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    path = recording(tmp_path / "day.jsonl", 90)
    topic = f"{topic_prefix}.distribution"
    code, out, err = await run_cli(
        "replay", str(path), "--quiet", "--kafka-bootstrap", kafka_bootstrap,
        "--topic-distribution", topic,
    )  # fmt: skip
    assert code == 0, err
    assert re.fullmatch(
        rf"replayed 90 snapshots from {re.escape(str(path))} to {re.escape(topic)}: "
        r"90 confirmed written in \d+\.\ds\n",
        out,
    ), out
    assert await topic_size(kafka_bootstrap, topic) == 90
