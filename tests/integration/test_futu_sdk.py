"""The official futu SDK reads the same numbers from the simulator as our client does.

The SDK registers the same protobuf symbols as streams.pb, so it never runs in this
process: the simulator runs as ``capflow opend-sim`` in one subprocess and the SDK
in another; our client runs here.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.opend.client import OpenDClient
from streams.opend.errors import RateLimitError, UnknownGroupError
from streams.opend.snapshot import AMOUNT_FIELDS
from streams.opend_sim.scenario import DEMO_PATH
from tests.integration.harness import sdk, sim_process

pytestmark = pytest.mark.integration
pytest.importorskip("grpc_tools")  # dev environment marker; futu is checked in the subprocess

CODES = ["HK.00700", "HK.09988", "HK.00005", "US.AAPL"]
START = "2024-06-03T10:05:17+08:00"
GROUP = ["HK.00700", "US.AAPL", "HK.800000", "SH.600519"]  # a watchlist group, in app order

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
def sim_port() -> Iterator[int]:
    flags = ["--scenario", str(DEMO_PATH), "--speed", "0", "--start", START]
    groups = ["--user-group", f"Tech={','.join(GROUP)}", "--user-group", "Empty="]
    with sim_process(*flags, *groups, "--rate-limit-requests", "1000") as (port, _line):
        yield port


def run_sdk(port: int, fmt: str, home: Path) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = sdk(SDK_SCRIPT, [str(port), fmt, *CODES, "HK.99999"], home)
    return data


async def test_sdk_and_client_read_the_same_numbers(sim_port: int, tmp_path: Path) -> None:
    # Protobuf bodies: the SDK's JSON mode needs simplejson, which futu-api does not install.
    # The simulator's JSON support is covered in test_sim_robustness.py.
    read = run_sdk(sim_port, "protobuf", tmp_path)
    async with OpenDClient("127.0.0.1", sim_port, timeout=5) as client:
        for code in CODES:
            ours = await client.get_capital_distribution(code)
            theirs = read[code]
            assert "error" not in theirs, theirs
            assert {k: theirs[k] for k in AMOUNT_FIELDS} == ours.amounts()
            assert theirs["update_time"] == ours.update_time
            if code.startswith("HK."):
                assert sum(ours.amounts().values()) > 0
    assert "unknown stock" in str(read["HK.99999"]["error"])
    assert read["_state"]["market_hk"] == "MORNING"
    assert read["HK.00700"]["update_time"] == "2024-06-03 10:05:17"


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


def test_sdk_reads_the_simulators_notify_at_the_open(tmp_path: Path) -> None:
    flags = ["--scenario", str(DEMO_PATH), "--speed", "1", "--start", "2024-06-03T09:29:58+08:00"]
    with sim_process(*flags) as (port, _line):
        data = sdk(SDK_NOTIFY_SCRIPT, [str(port)], tmp_path)
    assert data["ok"], data
    texts = [" ".join(content) for ret, content in data["seen"] if ret == 0]
    assert any("GTW_EVENT" in t and "HK market open" in t for t in texts), data["seen"]


SDK_FLOW_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from futu import RET_OK, OpenQuoteContext
    result, port, codes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    ctx = OpenQuoteContext(host="127.0.0.1", port=port)
    out = {}
    try:
        for i, code in enumerate(codes):
            ret, data = ctx.get_capital_flow(code)
            key = f"{i}:{code}"
            out[key] = data.to_dict("records") if ret == RET_OK else {"error": str(data)}
        ret, data = ctx.get_capital_distribution(codes[0])
        out["3212"] = data.iloc[0].to_dict() if ret == RET_OK else {"error": str(data)}
    finally:
        ctx.close()
    open(result, "w").write(json.dumps(out, default=str))
    """
)
FLOW_CLASSES = ("super_in_flow", "big_in_flow", "mid_in_flow", "sml_in_flow")


async def test_sdk_reads_the_same_capital_flow_as_our_client(sim_port: int, tmp_path: Path) -> None:
    codes = ["HK.00700", "HK.09988", "US.AAPL", "HK.99999", "HK.800000"]
    read = sdk(SDK_FLOW_SCRIPT, [str(sim_port), *codes], tmp_path)
    async with OpenDClient("127.0.0.1", sim_port, timeout=5) as client:
        for i, code in enumerate(codes[:3]):
            ours = await client.get_capital_flow(code)
            theirs = read[f"{i}:{code}"]
            assert isinstance(theirs, list), theirs
            assert [r["capital_flow_item_time"] for r in theirs] == [r.time for r in ours.rows]
            for got, row in zip(theirs, ours.rows, strict=True):
                assert got["in_flow"] == row.in_flow
                assert {c: got[c] for c in FLOW_CLASSES} == {
                    c: getattr(row, c) for c in FLOW_CLASSES
                }
                assert got["main_in_flow"] == "N/A" and row.main_in_flow is None  # INTRADAY
                assert got["last_valid_time"] == ours.last_valid_time
    # 10:05:17 on the demo day: 09:30 .. 10:05 and 10:06 in progress, as of 10:05:17.
    hk = read["0:HK.00700"]
    assert len(hk) == 37 and hk[0]["capital_flow_item_time"] == "2024-06-03 09:30:00"
    assert hk[0]["in_flow"] == 0.0 and hk[-1]["capital_flow_item_time"] == "2024-06-03 10:06:00"
    assert hk[-1]["last_valid_time"] == read["3212"]["update_time"] == "2024-06-03 10:05:17"
    large = read["3212"]["capital_in_super"] + read["3212"]["capital_in_big"]
    large -= read["3212"]["capital_out_super"] + read["3212"]["capital_out_big"]
    assert hk[-1]["super_in_flow"] + hk[-1]["big_in_flow"] == pytest.approx(large, abs=1e-6)
    assert "unknown stock" in read["3:HK.99999"]["error"]
    assert "not supported" in read["4:HK.800000"]["error"]


async def test_a_capital_flow_rate_limit_is_an_error_to_the_sdk_and_to_our_client(
    tmp_path: Path,
) -> None:
    flags = ["--scenario", str(DEMO_PATH), "--speed", "0", "--start", START]
    limits = ["--flow-rate-limit-requests", "2", "--flow-rate-limit-window", "600"]
    with sim_process(*flags, *limits) as (port, line):
        assert "flow limit=2/600s" in line
        read = sdk(SDK_FLOW_SCRIPT, [str(port), "HK.00700", "HK.00700", "HK.00700"], tmp_path)
        async with OpenDClient("127.0.0.1", port, timeout=5) as client:
            with pytest.raises(RateLimitError) as caught:
                await client.get_capital_flow("HK.00700")
            # Capital distribution has its own budget: still answered.
            assert (await client.get_capital_distribution("HK.00700")).security == "HK.00700"
    assert isinstance(read["0:HK.00700"], list) and isinstance(read["1:HK.00700"], list)
    assert "频率" in read["2:HK.00700"]["error"] and "capital flow" in read["2:HK.00700"]["error"]
    assert "error" not in read["3212"]
    assert caught.value.proto_id == 3211 and "at most 2 requests per 600" in caught.value.ret_msg


SDK_GROUP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from futu import RET_OK, OpenQuoteContext
    result, port, groups = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    ctx = OpenQuoteContext(host="127.0.0.1", port=port)
    out = {}
    try:
        for group in groups:
            ret, data = ctx.get_user_security(group)
            out[group] = data.to_dict("records") if ret == RET_OK else {"error": str(data)}
    finally:
        ctx.close()
    open(result, "w").write(json.dumps(out, default=str))
    """
)


async def test_sdk_reads_the_same_watchlist_group_as_our_client(
    sim_port: int, tmp_path: Path
) -> None:
    read = sdk(SDK_GROUP_SCRIPT, [str(sim_port), "Tech", "Empty", "Nope"], tmp_path)
    async with OpenDClient("127.0.0.1", sim_port, timeout=5) as client:
        ours = await client.get_user_security("Tech")
        assert await client.get_user_security("Empty") == []
        with pytest.raises(UnknownGroupError):
            await client.get_user_security("Nope")
    theirs = read["Tech"]
    assert isinstance(theirs, list), theirs
    assert [row["code"] for row in theirs] == ours == GROUP
    by_code = {row["code"]: row for row in theirs}
    assert by_code["HK.00700"]["stock_type"] == "STOCK" and by_code["HK.00700"]["lot_size"] == 100
    assert by_code["HK.800000"]["stock_type"] == "IDX"
    assert by_code["US.AAPL"]["lot_size"] == 1 and by_code["US.AAPL"]["delisting"] is False
    assert read["Empty"] == []
    assert "unknown watchlist group Nope" in read["Nope"]["error"]


def describe(common: Any, *modules: Any) -> dict[str, Any]:
    """Name, number, label, type and type name of every field of ``modules``' messages
    and of ``common``'s (Qot_Common), and the PeriodType enum of ``common`` (run here on
    ours, in the SDK's process on its)."""
    from google.protobuf import descriptor_pb2

    out: dict[str, Any] = {}
    for module in (common, *modules):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        for message in proto.message_type:
            out[f"{proto.package}.{message.name}"] = {
                f.name: [f.number, f.label, f.type, f.type_name] for f in message.field
            }
    period = common.DESCRIPTOR.enum_types_by_name["PeriodType"]
    out["PeriodType"] = {v.name: v.number for v in period.values}
    return out


SDK_DESCRIPTORS = (
    "from typing import Any\n"
    + textwrap.dedent(inspect.getsource(describe))
    + textwrap.dedent(
        """
        import json, sys
        from futu.common.pb import Qot_Common_pb2 as common
        from futu.common.pb import Qot_GetCapitalDistribution_pb2, Qot_GetCapitalFlow_pb2
        from futu.common.pb import Qot_GetUserSecurity_pb2
        out = describe(
            common, Qot_GetCapitalFlow_pb2, Qot_GetCapitalDistribution_pb2, Qot_GetUserSecurity_pb2
        )
        open(sys.argv[1], "w").write(json.dumps(out))
        """
    )
)


def test_our_protocol_files_match_the_sdks(tmp_path: Path) -> None:
    """Field names, numbers, labels and types of 3211, 3212 and 3213 as the official SDK
    has them; of Qot_Common, the messages and fields we declare (a subset of its)."""
    from streams.pb.opend import (
        Qot_Common_pb2,
        Qot_GetCapitalDistribution_pb2,
        Qot_GetCapitalFlow_pb2,
        Qot_GetUserSecurity_pb2,
    )

    theirs = sdk(SDK_DESCRIPTORS, [], tmp_path)
    ours = describe(
        Qot_Common_pb2,
        Qot_GetCapitalFlow_pb2,
        Qot_GetCapitalDistribution_pb2,
        Qot_GetUserSecurity_pb2,
    )
    common = {name: fields for name, fields in ours.items() if name.startswith("Qot_Common.")}
    assert {k: v for k, v in ours.items() if k not in common} == {
        k: v for k, v in theirs.items() if not k.startswith("Qot_Common.")
    }
    for name, fields in common.items():
        assert name in theirs, name
        assert fields == {f: theirs[name][f] for f in fields}, name
    assert "Qot_Common.SecurityStaticBasic" in common and "Qot_Common.Security" in common
    assert ours["PeriodType"]["PeriodType_INTRADAY"] == 1
    assert ours["Qot_GetCapitalFlow.CapitalFlowItem"]["inFlow"][0] == 1
    assert ours["Qot_GetUserSecurity.S2C"]["staticInfoList"][3] == ".Qot_Common.SecurityStaticInfo"
