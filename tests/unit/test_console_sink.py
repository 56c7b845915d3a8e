"""Console rendering of alert events: readable, stable, coloured only on a TTY."""

from __future__ import annotations

import io
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.sinks.console import (
    alert_currency,
    format_alert,
    human_amount,
    json_line,
    use_colour,
)


def make_alert(**data: Any) -> dict[str, Any]:
    payload = {
        "security": "HK.00700",
        "market": "HK",
        "trading_day": "2026-11-25",
        "direction": "inflow_to_outflow",
        "event_ts": 1795570800.0,  # 2026-11-25T01:40:00Z
        "r_w": -12_345_678.0,
        "threshold": 4_200_000.0,
        "window_s": 300.0,
        "previous_regime": "INFLOW",
        "previous_peak": 25_600_000.0,
        "previous_regime_started_ts": 1795569000.0,
        "regime_started_ts": 1795570740.0,
        "large_net": 1_000_000.0,
        "turnover": 9.9e8,
        "confirm": 2,
    }
    payload.update(data)
    return {
        "specversion": "1.0",
        "id": "0123456789abcdef0123456789abcdef",
        "source": "capflow/reversal-detector",
        "type": "capflow.alert.reversal.v1",
        "subject": "HK.00700",
        "time": "2026-11-25T01:40:00Z",
        "datacontenttype": "application/json",
        "data": payload,
    }


def test_human_amount_units() -> None:
    assert human_amount(-12_345_678) == "-12.3M"
    assert human_amount(4_200_000) == "+4.2M"
    assert human_amount(1.5e9) == "+1.5B"
    assert human_amount(999) == "+999"
    assert human_amount(-2500) == "-2.5K"
    assert human_amount(None) == "?"


def test_format_alert_plain_line() -> None:
    line = format_alert(make_alert(), colour=False)
    assert "\n" not in line
    assert "\033[" not in line
    assert "2026-11-25 09:40:00 HKT (01:40:00Z)" in line
    assert "HK.00700" in line
    assert "IN\u2192OUT" in line
    assert "R_300s=-12.3M HKD" in line  # the market's currency: the alert names none
    assert "\u00b14.2M" in line
    assert "peak +25.6M" in line
    assert "id=0123456789ab" in line
    assert "0123456789abc" not in line  # only a prefix of the id


def test_format_alert_other_direction_and_market() -> None:
    event = make_alert(direction="outflow_to_inflow", security="US.AAPL", market="US", r_w=3.2e6)
    line = format_alert(event, colour=False)
    assert "OUT\u2192IN" in line and "US.AAPL" in line and "+3.2M" in line
    assert "EST" in line or "EDT" in line  # New York local time


def test_format_alert_names_the_currency() -> None:
    written = make_alert(security="SH.600519", market="SH", currency="CNY")
    assert "R_300s=-12.3M CNY" in format_alert(written, colour=False)
    # A currency that is not an ISO code is not shown: the market's is.
    odd = make_alert(currency="\033[2Jdollars")
    line = format_alert(odd, colour=False)
    assert "R_300s=-12.3M HKD" in line and "dollars" not in line
    assert alert_currency(make_alert(security="XX.1", market="XX")) is None
    assert "R_300s=-12.3M  " in format_alert(make_alert(security="XX.1", market="XX"), colour=False)


def test_control_characters_from_the_topic_never_reach_the_terminal() -> None:
    line = format_alert(make_alert(security="HK.0\n\033[31m0700"), colour=True)
    assert "\n" not in line and "\033[31m0700" not in line and "HK.0??[31m0700" in line


def test_format_alert_colour_only_when_asked() -> None:
    coloured = format_alert(make_alert(), colour=True)
    assert "\033[31m" in coloured and "\033[0m" in coloured
    assert format_alert(make_alert(), colour=False).count("\033") == 0


def test_use_colour_follows_tty() -> None:
    class FakeTTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert use_colour(FakeTTY()) is True
    assert use_colour(io.StringIO()) is False


def test_format_alert_tolerates_missing_fields() -> None:
    line = format_alert({"id": "abc", "data": {}}, colour=False)
    assert "abc" in line and "?" in line


def test_json_line_round_trips() -> None:
    event = make_alert()
    line = json_line(event)
    assert "\n" not in line
    assert orjson.loads(line) == event


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.dictionaries(
        st.sampled_from(
            ["security", "market", "direction", "event_ts", "r_w", "threshold", "window_s",
             "previous_regime", "previous_peak", "trading_day"]
        ),
        json_values,
    ),
    time_text=st.one_of(st.none(), st.text(max_size=30)),
)  # fmt: skip
@example(data={"security": "\n"}, time_text=None)  # a control character in the data
@example(data={"direction": "x\x1b[2J"}, time_text="\r")
def test_any_decoded_alert_renders_without_raising(
    data: dict[str, Any], time_text: str | None
) -> None:
    """A record the follower decoded must never crash it while printing (a poison pill)."""
    event = {"id": "abc", "data": data, "time": time_text}
    line = format_alert(event, colour=False)
    assert "\n" not in line and "abc" in line


def test_out_of_range_event_times_render_as_unknown() -> None:
    for ts in (1e20, -1e15, 2**63):
        assert format_alert(make_alert(event_ts=ts), colour=False).startswith("????-??-??")
