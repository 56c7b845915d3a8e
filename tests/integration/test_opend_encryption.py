"""RSA + AES encryption against the official SDK, both directions, and our client.

The SDK (futu-api) runs in subprocesses (its protobuf symbols collide with ours):
one checks its own RSA/AES code against ours on the same key and data, in both
directions; one connects with ``is_encrypt=True`` to ``capflow opend-sim
--opend-rsa-key`` and must read what our client reads over its own encrypted
connection.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from streams.opend import crypto, framing
from streams.opend.client import OpenDClient
from streams.opend.errors import ConnectionLost, OpenDError, RequestTimeout
from streams.opend.snapshot import AMOUNT_FIELDS
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.opend_sim.scenario import DEMO_PATH, load_scenario
from streams.opend_sim.server import OpenDSimulator
from streams.pb.opend import KeepAlive_pb2 as keepalive_pb
from streams.pb.opend import Notify_pb2
from tests.integration.harness import run_cli, sdk, sim_process

pytestmark = pytest.mark.integration
pytest.importorskip("grpc_tools")  # dev environment marker; futu is checked in the subprocess

START = "2024-06-03T10:05:17+08:00"
CODES = ["HK.00700", "HK.09988", "US.AAPL"]
AES_KEY = "0123456789abcdef"
AES_IV = "fedcba9876543210"
PLAINS = [b"", b"x", b"0123456789abcdef", os.urandom(37), os.urandom(250)]

SDK_CRYPTO = textwrap.dedent(
    """
    import json, sys
    from futu.common.sys_config import SysConfig, RsaCrypt
    from futu.common.conn_mng import FutuConnMng
    result, key_file, aes_key, aes_iv = sys.argv[1:5]
    jobs = json.loads(sys.stdin.read())
    SysConfig.set_init_rsa_file(key_file)
    FutuConnMng.add_conn({"conn_id": 1, "conn_key": aes_key, "conn_iv": None, "is_encrypt": True})
    FutuConnMng.add_conn({"conn_id": 2, "conn_key": aes_key, "conn_iv": aes_iv, "is_encrypt": True})
    plains = [bytes.fromhex(p) for p in jobs["plains"]]
    out = {
        "rsa": [RsaCrypt.encrypt(p).hex() for p in plains],
        "ecb": [FutuConnMng.encrypt_conn_data(1, p)[2].hex() for p in plains],
        "cbc": [FutuConnMng.encrypt_conn_data(2, p)[2].hex() for p in plains],
        "rsa_read": [RsaCrypt.decrypt(bytes.fromhex(c)).hex() for c in jobs["rsa"]],
    }
    for mode, conn in (("ecb", 1), ("cbc", 2)):
        read = [FutuConnMng.decrypt_conn_data(conn, bytes.fromhex(c))[2] for c in jobs[mode]]
        out[mode + "_read"] = [r.hex() for r in read]
    open(result, "w").write(json.dumps(out))
    """
)

SDK_CLIENT = textwrap.dedent(
    """
    import json, sys
    from futu import RET_OK, OpenQuoteContext, SysConfig
    result, port, key_file, codes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    SysConfig.enable_proto_encrypt(True)
    SysConfig.set_init_rsa_file(key_file)
    ctx = OpenQuoteContext(host="127.0.0.1", port=port, is_encrypt=True)
    out = {}
    try:
        for code in codes:
            ret, data = ctx.get_capital_distribution(code)
            out[code] = data.iloc[0].to_dict() if ret == RET_OK else {"error": str(data)}
        ret, state = ctx.get_global_state()
        out["_state"] = state if ret == RET_OK else {"error": str(state)}
    finally:
        ctx.close()
    open(result, "w").write(json.dumps(out, default=str))
    """
)


def write_key(path: Path) -> rsa.RSAPrivateKey:
    """A 1024-bit PKCS#1 PEM key, the form the SDK documents."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return key


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rsa") / "conn_key.pem"
    write_key(path)
    return path


def test_sdk_and_our_ciphers_read_each_other(key_file: Path, tmp_path: Path) -> None:
    key = crypto.load_rsa_key(key_file)
    ecb, cbc = crypto.FtAesEcb(AES_KEY), crypto.AesCbc(AES_KEY, AES_IV)
    ours = {
        "plains": [p.hex() for p in PLAINS],
        "rsa": [crypto.rsa_encrypt(key, p).hex() for p in PLAINS if p],
        "ecb": [ecb.encrypt(p).hex() for p in PLAINS],
        "cbc": [cbc.encrypt(p).hex() for p in PLAINS],
    }
    sdk_out: dict[str, Any] = sdk(
        SDK_CRYPTO, [str(key_file), AES_KEY, AES_IV], tmp_path, json.dumps(ours)
    )
    # The SDK reads what we wrote ...
    assert sdk_out["rsa_read"] == [p.hex() for p in PLAINS if p]
    assert sdk_out["ecb_read"] == ours["plains"] and sdk_out["cbc_read"] == ours["plains"]
    # ... and we read what it wrote; deterministic modes are byte-identical.
    assert [crypto.rsa_decrypt(key, bytes.fromhex(c)) for c in sdk_out["rsa"]] == PLAINS
    assert sdk_out["ecb"] == ours["ecb"] and sdk_out["cbc"] == ours["cbc"]
    assert [ecb.decrypt(bytes.fromhex(c)) for c in sdk_out["ecb"]] == PLAINS


@pytest.fixture(scope="module")
def encrypted_sim(key_file: Path) -> Iterator[int]:
    flags = ["--scenario", str(DEMO_PATH), "--speed", "0", "--start", START]
    flags += ["--rate-limit-requests", "1000", "--opend-rsa-key", str(key_file)]
    with sim_process(*flags) as (port, line):
        assert "encryption=rsa+aes" in line
        yield port


@pytest.mark.parametrize("algo", [crypto.ENC_AES_CBC, crypto.ENC_FTAES_ECB])
async def test_sdk_with_is_encrypt_and_our_client_read_the_same(
    encrypted_sim: int, key_file: Path, tmp_path: Path, algo: int
) -> None:
    read: dict[str, Any] = sdk(SDK_CLIENT, [str(encrypted_sim), str(key_file), *CODES], tmp_path)
    key = crypto.load_rsa_key(key_file)
    client = OpenDClient("127.0.0.1", encrypted_sim, timeout=5, rsa_key=key, packet_enc_algo=algo)
    async with client:
        for code in CODES:
            ours = await client.get_capital_distribution(code)
            theirs = read[code]
            assert isinstance(theirs, dict) and "error" not in theirs, theirs
            assert {k: theirs[k] for k in AMOUNT_FIELDS} == ours.amounts()
            assert theirs["update_time"] == ours.update_time
        state = await client.get_global_state()
        assert state.marketHK == 3
    assert read["_state"]["market_hk"] == "MORNING"


async def test_plain_client_cannot_talk_to_an_encrypted_simulator(key_file: Path) -> None:
    sim = OpenDSimulator(
        MarketModel(load_scenario(DEMO_PATH)),
        SimClock(0, speed=0),
        rsa_key=crypto.load_rsa_key(key_file),
    )
    await sim.start()
    try:
        with pytest.raises((ConnectionLost, RequestTimeout)):
            async with OpenDClient("127.0.0.1", sim.port, timeout=2):
                pass
        # The simulator says why it closed the connection.
        assert "not encrypted with this simulator's RSA key" in sim.frame_errors[0]
        other = write_key(key_file.parent / "other.pem")
        with pytest.raises((ConnectionLost, RequestTimeout)):
            async with OpenDClient("127.0.0.1", sim.port, timeout=2, rsa_key=other):
                pass
    finally:
        await sim.stop()


async def test_fetch_and_worker_with_an_rsa_key(key_file: Path, tmp_path: Path) -> None:
    scenario = load_scenario(DEMO_PATH)
    sim = OpenDSimulator(
        MarketModel(scenario), SimClock(scenario.start + 600, speed=0),
        rsa_key=crypto.load_rsa_key(key_file),
    )  # fmt: skip
    await sim.start()
    try:
        code, out, err = await run_cli(
            "fetch", "HK.00700", "--json", "--opend-port", str(sim.port),
            "--opend-rsa-key", str(key_file),
        )  # fmt: skip
        assert code == 0, err
        row = json.loads(out)
        want = sim.market.distribution("HK.00700", scenario.start + 600)
        assert row["capital_in_big"] == want.capital_in_big
        (conn,) = sim.connections.values()
        assert conn.encryption == "AesCbc"
    finally:
        await sim.stop()
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    for argv in (("fetch", "HK.00700"), ("worker",), ("opend-sim", "--port", "0")):
        code, _out, err = await run_cli(*argv, "--opend-rsa-key", str(junk))
        assert code == 2, (argv, err)
        assert "not a PEM RSA private key" in err


@pytest.mark.parametrize("algo", [crypto.ENC_AES_CBC, crypto.ENC_FTAES_ECB])
async def test_every_reply_and_push_is_encrypted(key_file: Path, algo: int) -> None:
    key = crypto.load_rsa_key(key_file)
    sim = OpenDSimulator(MarketModel(load_scenario(DEMO_PATH)), SimClock(0, speed=0), rsa_key=key)
    await sim.start()
    pushes: list[framing.Frame] = []
    try:
        async with OpenDClient(
            "127.0.0.1", sim.port, timeout=2, rsa_key=key, packet_enc_algo=algo,
            on_push=pushes.append,
        ) as client:  # fmt: skip
            with pytest.raises(OpenDError, match="unsupported protoID 9999"):
                await client.request(
                    9999, keepalive_pb.Request(c2s={"time": 1}), keepalive_pb.Response
                )
            assert sim.push_notify("hello") == 1
            assert await client.keep_alive() > 0  # the push arrived before this reply
            assert client.connected
        assert [Notify_pb2.Response.FromString(p.body).s2c.event.desc for p in pushes] == ["hello"]
        (conn,) = sim.connections.values()
        assert conn.encryption == ("AesCbc" if algo == crypto.ENC_AES_CBC else "FtAesEcb")
    finally:
        await sim.stop()
