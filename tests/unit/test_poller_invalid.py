"""Poller: an invalid reply or any unexpected client error is counted, logged once, survived."""

from __future__ import annotations

import logging

import pytest

from streams.observability.metrics import OPEND_REQUESTS
from streams.pb.opend import Qot_GetCapitalDistribution_pb2 as capdist_pb
from tests.fakes import FakeClock, FakeOpenD, poller_on


def s2c(clock: FakeClock, **fields: object) -> capdist_pb.S2C:
    values: dict[str, object] = {
        "capitalInBig": 2.0,
        "capitalInMid": 3.0,
        "capitalInSmall": 4.0,
        "capitalOutBig": 1.5,
        "capitalOutMid": 2.5,
        "capitalOutSmall": 3.5,
        "updateTime": "2026-11-24 10:00:00",
        "updateTimestamp": clock.now,
    }
    values.update(fields)
    return capdist_pb.S2C(**values)  # type: ignore[arg-type]


async def test_invalid_replies_are_counted_logged_once_and_polling_goes_on(
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad_ms = s2c(clock, updateTimestamp=clock.now * 1000, updateTime="")
    opend = FakeOpenD(
        clock,
        script={
            "HK.00700": [
                bad_ms,
                bad_ms,
                s2c(clock, updateTimestamp=1e20),
                s2c(clock, capitalInBig=float("nan")),
                capdist_pb.S2C(),
                s2c(clock),
            ]
        },
    )
    poller, published = poller_on(clock, opend, ["HK.00700"])
    before = OPEND_REQUESTS.labels("3212", "invalid")._value.get()
    with caplog.at_level(logging.ERROR, logger="streams.polling.poller"):
        for _ in range(6):
            assert await poller.step() == "HK.00700"
    assert poller.stats.invalid == 5 and poller.stats.ok == 1
    assert OPEND_REQUESTS.labels("3212", "invalid")._value.get() - before == 5
    assert [key for key, _ in published] == ["HK.00700"]  # only the good reply
    assert poller.active() == ["HK.00700"]  # an invalid reply drops nothing
    messages = [r.getMessage() for r in caplog.records]
    # Once per security and rule: the millisecond and 1e20 timestamps give one line.
    assert len(messages) == 3, messages
    assert all("HK.00700" in m for m in messages)
    assert any("updateTimestamp" in m and "ahead" in m for m in messages)
    assert any("capital_in_big" in m for m in messages)
    assert any("without s2c" in m for m in messages)


async def test_any_unexpected_client_error_is_counted_and_survived(
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = [RuntimeError("boom"), RuntimeError("boom again"), KeyError("x"), s2c(clock)]
    opend = FakeOpenD(clock, script={"HK.00700": script})
    poller, published = poller_on(clock, opend, ["HK.00700"])
    with caplog.at_level(logging.ERROR, logger="streams.polling.poller"):
        for _ in range(4):
            await poller.step()
    assert poller.stats.errors == 3 and poller.stats.ok == 1
    assert len(published) == 1
    assert len(caplog.records) == 2  # RuntimeError once, KeyError once
    assert caplog.records[0].exc_info is not None
