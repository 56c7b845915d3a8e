"""OpenD's market state first, the static hours when OpenD has no (fresh) answer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from streams.opend.errors import ConnectionLost, OpenDError
from streams.pb.opend import GetGlobalState_pb2 as global_state_pb
from streams.polling.market_state import MarketState, states_from_global_state

# Tuesday 2026-11-24 10:00 HKT (HK open by the table) and a Saturday (all closed).
HK_OPEN = datetime(2026, 11, 24, 2, 0, tzinfo=UTC).timestamp()
WEEKEND = datetime(2026, 11, 28, 2, 0, tzinfo=UTC).timestamp()
CLOSED, MORNING, REST, AFTERNOON, WAITING = 6, 3, 4, 5, 2


class Fetch:
    def __init__(self, answer: Mapping[str, int] | Exception) -> None:
        self.answer = answer
        self.calls = 0

    async def __call__(self) -> Mapping[str, int]:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_opend_closed_wins_over_the_table_on_a_holiday() -> None:
    state = MarketState(Fetch({"HK": CLOSED, "US": CLOSED}))
    await state.refresh_if_due(HK_OPEN)
    assert not state.is_open("HK", HK_OPEN)
    assert state.source("HK", HK_OPEN) == "opend"


async def test_opend_open_wins_over_the_table() -> None:
    state = MarketState(Fetch({"HK": MORNING}))
    await state.refresh_if_due(WEEKEND)
    assert state.is_open("HK", WEEKEND)


@pytest.mark.parametrize(
    ("value", "is_open"),
    [
        (MORNING, True),
        (AFTERNOON, True),
        (REST, False),
        (WAITING, False),
        (CLOSED, False),
        (1, False),
    ],
)
async def test_only_regular_trading_states_are_open(value: int, is_open: bool) -> None:
    state = MarketState(Fetch({"HK": value}))
    await state.refresh_if_due(HK_OPEN)
    assert state.is_open("HK", HK_OPEN) is is_open


@pytest.mark.parametrize(
    "error", [ConnectionLost("down"), OpenDError(-1, 0, "busy", 1002), TimeoutError()]
)
async def test_falls_back_to_the_table_when_opend_does_not_answer(error: Exception) -> None:
    fetch = Fetch(error)
    state = MarketState(fetch, retry=30.0)
    assert not await state.refresh_if_due(HK_OPEN)
    assert state.is_open("HK", HK_OPEN) and not state.is_open("HK", WEEKEND)
    assert state.source("HK", HK_OPEN) == "hours"
    await state.refresh_if_due(HK_OPEN + 10)
    assert fetch.calls == 1  # retried only after `retry`
    await state.refresh_if_due(HK_OPEN + 30)
    assert fetch.calls == 2


async def test_unknown_or_stale_state_uses_the_table() -> None:
    fetch = Fetch({"HK": CLOSED, "US": 0})
    state = MarketState(fetch, refresh=120.0, max_age=600.0)
    await state.refresh_if_due(HK_OPEN)
    assert state.source("US", HK_OPEN) == "hours"  # 0 = QotMarketState_None
    fetch.answer = ConnectionLost("gone")
    for t in range(120, 700, 30):
        await state.refresh_if_due(HK_OPEN + t)
    assert state.is_open("HK", HK_OPEN + 700)  # the closed answer is too old now


async def test_refresh_schedule_and_invalidate() -> None:
    fetch = Fetch({"HK": MORNING})
    state = MarketState(fetch, refresh=120.0)
    assert await state.refresh_if_due(HK_OPEN)
    assert not await state.refresh_if_due(HK_OPEN + 119)
    assert await state.refresh_if_due(HK_OPEN + 120)
    state.invalidate()
    assert await state.refresh_if_due(HK_OPEN + 121)
    assert fetch.calls == 3


def test_states_from_global_state() -> None:
    s2c = global_state_pb.S2C(marketHK=3, marketUS=6, marketSH=4, marketSZ=2)
    assert states_from_global_state(s2c) == {"HK": 3, "US": 6, "SH": 4, "SZ": 2}
    assert states_from_global_state(global_state_pb.S2C(marketHK=5)) == {"HK": 5}
