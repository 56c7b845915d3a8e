"""The official futu SDK reads the same numbers from the simulator as our client does.

The SDK registers the same protobuf symbols as streams.pb, so it never runs in this
process: the simulator runs as ``capflow opend-sim`` in one subprocess and the SDK
in another; our client runs here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from streams.opend.client import OpenDClient
from streams.opend.snapshot import AMOUNT_FIELDS
from streams.opend_sim.scenario import DEMO_PATH
from tests.integration.harness import opend_sim_process

pytestmark = pytest.mark.integration
pytest.importorskip("grpc_tools")  # dev environment marker; futu is checked in the subprocess

CODES = ["HK.00700", "HK.09988", "HK.00005", "US.AAPL"]
START = "2024-06-03T10:05:17+08:00"

SDK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from futu import RET_OK, OpenQuoteContext, SysConfig, ProtoFMT
    result, port, fmt, codes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    if fmt == "json":
        SysConfig.set_proto_fmt(ProtoFMT.Json)
    ctx = OpenQuoteContext(host="127.0.0.1", port=port)
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


@pytest.fixture(scope="module")
async def sim_port(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[int]:
    async with opend_sim_process(
        tmp_path_factory.mktemp("sim") / "opend-sim.log",
        "--scenario", str(DEMO_PATH), "--speed", "0", "--start", START,
        "--rate-limit-requests", "1000",
    ) as (_, port):  # fmt: skip
        yield port


def run_script(script: str, args: list[str], home: Path) -> Any:
    """Run an SDK script; it writes its JSON result to a file, because the SDK's log
    threads write to stdout too and can land inside a printed line."""
    env = {**os.environ, "HOME": str(home)}  # the SDK writes its logs under $HOME
    result = home / "result.json"
    result.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", script, str(result), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    if "No module named 'futu'" in done.stderr:
        pytest.skip("futu-api not installed")
    assert result.exists(), f"SDK failed: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return json.loads(result.read_text())


def run_sdk(port: int, fmt: str, home: Path) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = run_script(
        SDK_SCRIPT, [str(port), fmt, *CODES, "HK.99999"], home
    )
    return data


async def test_sdk_and_client_read_the_same_numbers(sim_port: int, tmp_path: Path) -> None:
    # Protobuf bodies: the SDK's JSON mode needs simplejson, which futu-api does not install.
    # The simulator's JSON support is covered in test_sim_robustness.py.
    sdk = run_sdk(sim_port, "protobuf", tmp_path)
    async with OpenDClient("127.0.0.1", sim_port, timeout=5) as client:
        for code in CODES:
            ours = await client.get_capital_distribution(code)
            theirs = sdk[code]
            assert "error" not in theirs, theirs
            assert {k: theirs[k] for k in AMOUNT_FIELDS} == ours.amounts()
            assert theirs["update_time"] == ours.update_time
            if code.startswith("HK."):
                assert sum(ours.amounts().values()) > 0
    assert "unknown stock" in str(sdk["HK.99999"]["error"])
    assert sdk["_state"]["market_hk"] == "MORNING"
    assert sdk["HK.00700"]["update_time"] == "2024-06-03 10:05:17"


SDK_NOTIFY_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from futu import RET_OK, OpenQuoteContext, SysNotifyHandlerBase
    result, port = sys.argv[1], int(sys.argv[2])
    seen = []

    class Notes(SysNotifyHandlerBase):
        def on_recv_rsp(self, rsp_pb):
            ret, content = super().on_recv_rsp(rsp_pb)
            seen.append([ret, [str(c) for c in content]])
            return ret, content

    ctx = OpenQuoteContext(host="127.0.0.1", port=port)
    ctx.set_handler(Notes())
    try:
        deadline = time.time() + 20
        while time.time() < deadline and not any("HK market open" in str(s) for s in seen):
            time.sleep(0.1)
        ret, data = ctx.get_capital_distribution("HK.00700")
        ok = ret == RET_OK
    finally:
        ctx.close()
    open(result, "w").write(json.dumps({"seen": seen, "ok": ok}))
    """
)


async def test_sdk_reads_the_simulators_notify_at_the_open(tmp_path: Path) -> None:
    async with opend_sim_process(
        tmp_path / "opend-sim.log",
        "--scenario", str(DEMO_PATH), "--speed", "1", "--start", "2024-06-03T09:29:58+08:00",
    ) as (_, port):  # fmt: skip
        data = run_script(SDK_NOTIFY_SCRIPT, [str(port)], tmp_path)
    assert data["ok"], data
    texts = [" ".join(content) for ret, content in data["seen"] if ret == 0]
    assert any("GTW_EVENT" in t and "HK market open" in t for t in texts), data["seen"]
