"""The checked-in generated protobuf modules match proto/ (run python -m streams.pb.generate)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.pb import generate

pytest.importorskip("grpc_tools")


def test_generated_files_are_fresh() -> None:
    fresh = generate.generated_in_tempdir()
    assert fresh, "nothing generated"
    stale = [
        rel
        for rel, data in fresh.items()
        if not (generate.OUT_ROOT / rel).exists() or (generate.OUT_ROOT / rel).read_bytes() != data
    ]
    assert not stale, f"stale generated files {stale}: run python -m streams.pb.generate"


def test_imports_are_package_absolute() -> None:
    for path in Path(generate.OUT_ROOT).rglob("*_pb2.py*"):
        for line in path.read_text().splitlines():
            if line.startswith("import ") and "_pb2" in line:
                pytest.fail(f"{path}: top-level import {line!r}")


def test_published_field_numbers() -> None:
    from streams.pb.opend import InitConnect_pb2, Qot_GetCapitalDistribution_pb2

    s2c = Qot_GetCapitalDistribution_pb2.S2C.DESCRIPTOR.fields_by_name
    numbers = {name: f.number for name, f in s2c.items()}
    assert numbers == {
        "capitalInBig": 1,
        "capitalInMid": 2,
        "capitalInSmall": 3,
        "capitalOutBig": 4,
        "capitalOutMid": 5,
        "capitalOutSmall": 6,
        "updateTime": 7,
        "updateTimestamp": 8,
        "capitalInSuper": 9,
        "capitalOutSuper": 10,
    }
    assert Qot_GetCapitalDistribution_pb2.DESCRIPTOR.package == "Qot_GetCapitalDistribution"
    init = InitConnect_pb2.S2C.DESCRIPTOR.fields_by_name
    assert init["keepAliveInterval"].number == 5 and init["connID"].number == 3


def test_published_capital_flow_fields() -> None:
    from streams.pb.opend import Qot_Common_pb2, Qot_GetCapitalFlow_pb2

    def numbers(message: object) -> dict[str, int]:
        fields = message.DESCRIPTOR.fields_by_name  # type: ignore[attr-defined]
        return {name: f.number for name, f in fields.items()}

    assert numbers(Qot_GetCapitalFlow_pb2.C2S) == {
        "security": 1,
        "periodType": 2,
        "beginTime": 3,
        "endTime": 4,
        "header": 100,
    }
    assert numbers(Qot_GetCapitalFlow_pb2.CapitalFlowItem) == {
        "inFlow": 1,
        "time": 2,
        "timestamp": 3,
        "mainInFlow": 4,
        "superInFlow": 5,
        "bigInFlow": 6,
        "midInFlow": 7,
        "smlInFlow": 8,
    }
    assert numbers(Qot_GetCapitalFlow_pb2.S2C) == {
        "flowItemList": 1,
        "lastValidTime": 2,
        "lastValidTimestamp": 3,
    }
    assert Qot_GetCapitalFlow_pb2.DESCRIPTOR.package == "Qot_GetCapitalFlow"
    assert Qot_Common_pb2.PeriodType_INTRADAY == 1 and Qot_Common_pb2.PeriodType_MONTH == 4
