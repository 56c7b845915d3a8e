"""render_day draws a real PNG from synthetic flows and alerts, and fails clearly on no data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from streams.offline.plotting import PlotDataError, render_day, select_day

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
START = 1795570800.0 - 3600  # 2026-11-25 08:40 HKT, before the open is fine for a plot


def synthetic_flows(security: str = "HK.00700", day: str = "2026-11-25") -> list[dict[str, Any]]:
    flows = []
    for i in range(240):
        ts = START + 30 * i
        large = 5e7 * math.sin(i / 40.0)
        r_w = 5e7 * (math.sin(i / 40.0) - math.sin((i - 10) / 40.0))
        flows.append(
            {
                "schema": "capflow.flow.v1",
                "security": security,
                "market": security.split(".")[0],
                "trading_day": day,
                "event_ts": ts,
                "window_s": 300.0,
                "large_net": large,
                "turnover": 1e6 * i,
                "change": {"large": r_w, "turnover": 1e7},
                "threshold": 4e6,
                "regime": "INFLOW" if r_w > 0 else "OUTFLOW",
            }
        )
    return flows


def alert(direction: str, ts: float, day: str = "2026-11-25") -> dict[str, Any]:
    return {
        "id": f"{int(ts):x}",
        "subject": "HK.00700",
        "data": {
            "security": "HK.00700",
            "trading_day": day,
            "direction": direction,
            "event_ts": ts,
            "r_w": -5e6 if direction == "inflow_to_outflow" else 5e6,
            "large_net": 1e7,
        },
    }


def test_render_day_writes_png(tmp_path: Path) -> None:
    alerts = [
        alert("inflow_to_outflow", START + 30 * 70),
        alert("outflow_to_inflow", START + 30 * 190),
    ]
    out = render_day(synthetic_flows(), alerts, tmp_path / "sub" / "day.png")
    assert out.exists()
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 20_000


def test_render_day_accepts_bare_alert_data(tmp_path: Path) -> None:
    bare = [alert("inflow_to_outflow", START + 600)["data"]]
    out = render_day(synthetic_flows(), bare, tmp_path / "bare.png")
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_render_day_without_flows_raises(tmp_path: Path) -> None:
    with pytest.raises(PlotDataError, match="no flow records"):
        render_day([], [alert("inflow_to_outflow", START)], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_select_day_defaults_to_latest_and_filters() -> None:
    flows = (
        synthetic_flows(day="2026-11-24")
        + synthetic_flows(day="2026-11-25")
        + synthetic_flows(security="HK.00005")
    )
    alerts = [
        alert("inflow_to_outflow", START, day="2026-11-24"),
        alert("outflow_to_inflow", START),
        alert("outflow_to_inflow", START),  # re-emitted after a restart: same id
    ]
    day_flows, day_alerts, day = select_day(flows, alerts, "HK.00700")
    assert day == "2026-11-25"
    assert len(day_flows) == 240
    assert {f["security"] for f in day_flows} == {"HK.00700"}
    assert [a["data"]["direction"] for a in day_alerts] == ["outflow_to_inflow"]
    ts = [f["event_ts"] for f in day_flows]
    assert ts == sorted(ts)

    _, earlier_alerts, day = select_day(flows, alerts, "HK.00700", "2026-11-24")
    assert day == "2026-11-24" and len(earlier_alerts) == 1


def test_select_day_errors_name_what_is_missing() -> None:
    with pytest.raises(PlotDataError, match=r"no flow records for US\.AAPL"):
        select_day(synthetic_flows(), [], "US.AAPL")
    with pytest.raises(PlotDataError, match="days seen: 2026-11-25"):
        select_day(synthetic_flows(), [], "HK.00700", "2026-01-02")
