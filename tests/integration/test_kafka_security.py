"""capflow against a real broker with SASL_PLAINTEXT (SCRAM-SHA-256) and SSL listeners.

worker, replay and alerts run end to end on each listener; a wrong password, a user
without ACLs, an untrusted certificate and a missing broker end every command within
seconds with one clear line, exit 1 and no traceback, and the password is never shown.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streams.broker.local import LocalKafka, free_port, port_open
from streams.broker.resolve import BrokerSetupError
from streams.kafka.topics import ensure_topics
from streams.offline.recording import to_json_line
from streams.pb.capflow.v1.snapshot_pb2 import DistributionSnapshot
from tests.integration.harness import Topics, run_cli, start_worker, workers_stopped
from tests.integration.secure_kafka import ALICE, BOB, Certificates, allow_prefix, secure_broker

pytestmark = pytest.mark.integration

T0 = 1_717_378_200.0  # 2024-06-03 09:30 HKT
WRONG_PASSWORD = "not-alices-pw-71c4"


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalKafka, Certificates]]:
    for attempt in (1, 2):  # a port taken between choosing and binding: choose again
        broker, certs = secure_broker(tmp_path_factory.mktemp("secure-kafka"))
        try:
            broker.start(progress=False)
            break
        except BrokerSetupError:
            broker.stop()
            if attempt == 2:
                raise
    try:
        yield broker, certs
    finally:
        broker.stop()


def reversal_recording(path: Path, security: str = "HK.00700") -> Path:
    """Large orders flow in for 9 minutes, then out: one inflow_to_outflow alert."""
    with open(path, "wb") as out:
        for i in range(15):
            msg = DistributionSnapshot(
                security=security, market="HK", qot_market=1, code=security.split(".")[1],
                capital_in_big=1000.0 * min(i, 9), capital_out_big=3000.0 * max(0, i - 9),
                update_timestamp=T0 + 60 * i, trading_day="2024-06-03", source="test",
            )  # fmt: skip
            out.write(to_json_line(msg))
    return path


def kafka_args(broker: LocalKafka, certs: Certificates, protocol: str, user: str = "") -> list[str]:
    """Command-line flags for one listener; the password stays in the environment."""
    args = ["--kafka-bootstrap", broker.listener_bootstrap(protocol)]
    args += ["--kafka-security-protocol", protocol]
    if protocol.startswith("SASL"):
        args += ["--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-username", user]
    if "SSL" in protocol:
        args += ["--kafka-ssl-cafile", str(certs.ca_pem)]
    return args


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SSL"])
async def test_worker_replay_and_alerts_on_a_secured_listener(
    secure: tuple[LocalKafka, Certificates],
    protocol: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker, certs = secure
    monkeypatch.setenv("CAPFLOW_KAFKA_SASL_PASSWORD", ALICE[1])
    kafka = kafka_args(broker, certs, protocol, ALICE[0])
    topics = Topics(f"sec{uuid.uuid4().hex[:8]}")
    recording = reversal_recording(tmp_path / "day.jsonl")
    # Created up front (over PLAINTEXT): a follower subscribing first would auto-create one.
    await ensure_topics({"bootstrap_servers": broker.bootstrap}, list(topics.names.values()), 3)

    code, out, err = await run_cli("replay", str(recording), "--quiet", *kafka, *topics.args()[:2])
    assert code == 0, err
    assert "15 confirmed written" in out

    worker = start_worker(
        broker.listener_bootstrap(protocol), topics, f"capflow-sec-{uuid.uuid4().hex[:8]}",
        tmp_path, opend_port=1, watchlist=["HK.00700"], extra=["--no-poller", *kafka],
    )  # fmt: skip
    with workers_stopped(worker):
        code, out, err = await run_cli(
            "alerts", "--from-beginning", "--max", "1", "--json", "--timeout", "150",
            *kafka, "--topic-alerts", topics.names["alerts"], timeout=180,
        )  # fmt: skip
        assert worker.proc.poll() is None, worker.tail()
    assert code == 0, f"{err}\n{worker.tail()}"
    alert = orjson.loads(out.splitlines()[0])
    assert alert["subject"] == "HK.00700"
    assert alert["data"]["direction"] == "inflow_to_outflow"
    log = worker.log.read_text(errors="replace")
    assert ALICE[1] not in log and ALICE[1] not in out + err


async def test_wrong_password_fails_fast_in_every_command(
    secure: tuple[LocalKafka, Certificates], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker, certs = secure
    monkeypatch.setenv("CAPFLOW_KAFKA_SASL_PASSWORD", WRONG_PASSWORD)
    kafka = kafka_args(broker, certs, "SASL_PLAINTEXT", ALICE[0])
    recording = reversal_recording(tmp_path / "day.jsonl")
    topics = Topics(f"pw{uuid.uuid4().hex[:8]}").args()
    commands = {
        "replay": ["replay", str(recording), *kafka, *topics],
        "record": ["record", str(tmp_path / "out.jsonl"), *kafka, *topics],
        "alerts": ["alerts", "--max", "1", *kafka, *topics],
        "plot": ["plot", "HK.00700", "-o", str(tmp_path / "p.png"), *kafka, *topics],
        "worker": [
            "worker", "--no-poller", "--data-dir", str(tmp_path / "w"),
            "--web-port", str(free_port()), *kafka, *topics,
        ],
    }  # fmt: skip
    # Before: replay and worker retried for minutes; alerts and record printed tracebacks.
    results = await asyncio.gather(*(run_cli(*argv, timeout=90) for argv in commands.values()))
    for name, (code, out, err) in zip(commands, results, strict=True):
        assert code == 1, (name, out, err)
        assert err.startswith(
            f"capflow {name}: SASL authentication failed for user 'alice' (mechanism SCRAM-SHA-256)"
        ), (name, err)
        assert "Traceback" not in err, (name, err)
        assert len(err.splitlines()) == 1, (name, err)
        assert WRONG_PASSWORD not in out + err, name
    assert not (tmp_path / "out.jsonl").exists()


async def test_user_without_acls_is_told_which_topics(
    secure: tuple[LocalKafka, Certificates], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker, certs = secure
    monkeypatch.setenv("CAPFLOW_KAFKA_SASL_PASSWORD", BOB[1])
    kafka = kafka_args(broker, certs, "SASL_PLAINTEXT", BOB[0])
    recording = reversal_recording(tmp_path / "day.jsonl")
    topic = f"acl{uuid.uuid4().hex[:8]}.distribution"
    code, out, err = await run_cli(
        "replay", str(recording), *kafka, "--topic-distribution", topic, timeout=90
    )
    assert code == 1, (out, err)
    assert err.strip() == (
        f"capflow replay: user 'bob' (mechanism SCRAM-SHA-256) is not authorized to use "
        f"topic(s) {topic} at {broker.listener_bootstrap('SASL_PLAINTEXT')}. "
        "Ask the cluster's operator for ACLs on them."
    )


async def test_user_without_a_group_acl_is_told_which_group(
    secure: tuple[LocalKafka, Certificates], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker, certs = secure
    prefix = f"bobs{uuid.uuid4().hex[:8]}"
    await allow_prefix(broker, BOB[0], prefix)
    monkeypatch.setenv("CAPFLOW_KAFKA_SASL_PASSWORD", BOB[1])
    kafka = kafka_args(broker, certs, "SASL_PLAINTEXT", BOB[0])
    topic = f"{prefix}.alerts"
    code, out, err = await run_cli(
        "alerts", "--max", "1", "--group", "not-bobs", "--topic-alerts", topic, *kafka, timeout=90
    )
    assert code == 1, (out, err)
    assert err.strip() == (
        "capflow alerts: user 'bob' (mechanism SCRAM-SHA-256) is not authorized to use "
        f"consumer group 'not-bobs' at {broker.listener_bootstrap('SASL_PLAINTEXT')}. "
        "Ask the cluster's operator for an ACL on it."
    )


async def test_worker_checks_faust_topics_too(
    secure: tuple[LocalKafka, Certificates], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ACLs on capflow's four topics only: the state changelog is refused, and named."""
    broker, certs = secure
    prefix = f"bobw{uuid.uuid4().hex[:8]}"
    await allow_prefix(broker, BOB[0], prefix)
    monkeypatch.setenv("CAPFLOW_KAFKA_SASL_PASSWORD", BOB[1])
    kafka = kafka_args(broker, certs, "SASL_PLAINTEXT", BOB[0])
    code, out, err = await run_cli(
        "worker", "--no-poller", "--app-id", "bobs-app", "--data-dir", str(tmp_path),
        *kafka, *Topics(prefix).args(), timeout=90,
    )  # fmt: skip
    assert code == 1, (out, err)
    assert err.startswith(
        "capflow worker: user 'bob' (mechanism SCRAM-SHA-256) is not authorized to use "
        "topic(s) bobs-app-__assignor-__leader, bobs-app-security-state-changelog at "
    ), err
    assert len(err.splitlines()) == 1, err


async def test_untrusted_certificate_is_named_not_retried(
    secure: tuple[LocalKafka, Certificates], tmp_path: Path
) -> None:
    broker, _ = secure
    recording = reversal_recording(tmp_path / "day.jsonl")
    code, out, err = await run_cli(
        "replay", str(recording), "--kafka-security-protocol", "SSL",
        "--kafka-bootstrap", broker.listener_bootstrap("SSL"), timeout=90,
    )  # fmt: skip
    assert code == 1, (out, err)
    assert "TLS certificate of Kafka at" in err and "is not trusted" in err, err
    assert "CAPFLOW_KAFKA_SSL_CAFILE" in err and "Traceback" not in err


async def test_no_broker_is_one_clear_line(tmp_path: Path) -> None:
    port = free_port()
    assert not port_open("127.0.0.1", port)
    common = ["--kafka-bootstrap", f"127.0.0.1:{port}", "--kafka-connect-timeout", "2"]
    recording = reversal_recording(tmp_path / "day.jsonl")
    commands = {
        "record": ["record", str(tmp_path / "out.jsonl"), *common],
        "alerts": ["alerts", "--max", "1", *common],
        "replay": ["replay", str(recording), *common],
        "worker": ["worker", "--no-poller", "--data-dir", str(tmp_path / "w"), *common],
    }
    # Before: record and alerts printed a traceback, replay and worker retried ~144 s.
    results = await asyncio.gather(*(run_cli(*argv, timeout=60) for argv in commands.values()))
    for name, (code, out, err) in zip(commands, results, strict=True):
        assert code == 1, (name, out, err)
        assert err.startswith(f"capflow {name}: no Kafka broker answers at 127.0.0.1:{port}")
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
