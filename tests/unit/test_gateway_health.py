"""A gateway's health on a fake clock: down after down_after of refused connections, sick
after sick_after of failing requests while another gateway is up, back at the first reply
with data; the backoffs a gateway-wide fault set are cleared, one security's are kept."""

from __future__ import annotations

import pytest

from streams.opend.errors import (
    ConnectionLost,
    OpenDError,
    RequestTimeout,
    ServerTimeoutError,
    classify,
)
from streams.polling.health import (
    DOWN,
    DROPPED,
    ERROR,
    SICK,
    TIMEOUT,
    UP,
    Change,
    GatewayHealth,
    HealthPolicy,
    cause_of,
)
from streams.polling.rejections import NO_QUOTE_RIGHT
from tests.fakes import HK_OPEN, FakeClock, FakeOpenD, poller_on
from tests.unit.test_poller_refusals import run_until

POLICY = HealthPolicy(down_after=6.0, sick_after=30.0, probe_every=5.0)


def health_at(t: float = 0.0) -> tuple[GatewayHealth, FakeClock]:
    clock = FakeClock(t)
    return GatewayHealth(POLICY, clock), clock


def failing(health: GatewayHealth, clock: FakeClock, until: float, every: float = 1.0) -> None:
    """A request that fails every ``every`` s, round the securities, until ``until``."""
    n = 0
    while clock.now < until:
        health.failed(f"HK.0000{n % 4}", ERROR, "内部错误 (internal error)")
        n += 1
        clock.now += every


def test_failures_for_sick_after_make_it_sick_only_while_another_gateway_is_up() -> None:
    health, clock = health_at()
    failing(health, clock, 29.0)
    assert health.check(others_up=True) is None  # 29 s: not yet
    failing(health, clock, 30.0)
    assert health.check(others_up=False) is None  # nowhere for its securities to go
    change = health.check(others_up=True)
    assert change is not None and change.state == SICK
    assert "failing for 30s" in change.reason and "internal error" in change.reason
    assert health.check(others_up=True) is None  # told once
    assert health.failing_for() == pytest.approx(30.0)


def test_a_reply_with_data_heals_it_and_says_how_long_the_fault_lasted() -> None:
    health, clock = health_at()
    failing(health, clock, 40.0)
    assert health.check(others_up=True) == Change(SICK, health.reason)
    assert health.probe_due() == pytest.approx(5.0)  # the first probe after probe_every
    clock.now += 5.0
    assert health.probe_due() == 0.0
    health.probed()
    assert health.answered() == pytest.approx(45.0)  # since the first failure
    assert health.check(others_up=True) == Change(UP, "")
    assert health.failing_for() is None
    assert health.describe()["probes"] == {"sent": 1, "ok": 1}


def test_one_securitys_short_streak_is_not_a_fault_of_the_gateway() -> None:
    health, clock = health_at()
    health.failed("HK.00001", ERROR, "x")
    health.failed("HK.00001", ERROR, "x")
    health.failed("HK.00001", ERROR, "x")
    assert health.answered() is None  # three failures, one security: its own trouble
    health.failed("HK.00001", ERROR, "x")
    health.failed("HK.00002", TIMEOUT, "y")
    assert health.answered() is None  # two securities, two failures: too few to tell
    for n in range(3):
        health.failed(f"HK.0000{n}", ERROR, "x")
    clock.now += 2.0
    assert health.answered() == pytest.approx(2.0)
    assert health.describe()["failures"] == {ERROR: 7, TIMEOUT: 1}


def test_refused_connections_make_it_down_after_down_after_and_a_connection_brings_it_back() -> (
    None
):
    health, clock = health_at()
    assert health.unreachable("connection refused") is True
    clock.now = 5.99
    assert health.unreachable("connection refused") is False
    assert health.check(others_up=False) is None
    clock.now = 6.0
    change = health.check(others_up=False)  # down whatever the others are
    assert change is not None and change.state == DOWN and "connection refused" in change.reason
    clock.now = 20.0
    health.reachable()
    assert health.check(others_up=True) == Change(UP, "")
    # Counted from when the connection went, not from the reconnect attempt that failed
    # (that one is still the first refusal of the outage: it is told).
    health.disconnected()
    clock.now = 25.0
    assert health.unreachable("connection refused") is True
    assert health.unreachable("connection refused") is False
    clock.now = 26.0
    assert health.check(others_up=True) == Change(DOWN, health.reason)


def test_a_connection_dropped_under_a_request_counts_for_down_and_for_sick() -> None:
    health, clock = health_at()
    health.failed("HK.00001", DROPPED, "connection reset")
    clock.now = 6.0
    assert health.check(others_up=True) == Change(DOWN, health.reason)  # never reconnected
    health, clock = health_at()
    for _ in range(31):  # each request drops the connection, each reconnect succeeds
        health.failed("HK.00001", DROPPED, "connection reset")
        health.reachable()
        clock.now += 1.0
    change = health.check(others_up=True)
    assert change is not None and change.state == SICK


def test_the_last_one_standing_is_up_again_and_needs_a_new_streak() -> None:
    health, clock = health_at()
    failing(health, clock, 31.0)
    assert health.check(others_up=True) is not None and health.state == SICK
    assert health.check(others_up=False) == Change(UP, "")  # the others went sick too
    failing(health, clock, 60.0)
    assert health.check(others_up=True) is None  # 29 s of the new streak
    failing(health, clock, 62.0)
    assert health.check(others_up=True) is not None and health.state == SICK
    assert health.answered() is not None  # a fault of the gateway: backoffs go


def test_back_from_down_it_is_up_before_it_can_be_sick() -> None:
    health, clock = health_at()
    failing(health, clock, 5.0)
    health.unreachable("connection refused")
    clock.now = 60.0
    assert health.check(others_up=True) == Change(DOWN, health.reason)
    health.reachable()
    assert health.check(others_up=True) == Change(UP, "")
    health.failed("HK.00001", ERROR, "x")
    assert health.check(others_up=True) is None  # the streak counts from the return


def test_causes_and_policy() -> None:
    assert cause_of(RequestTimeout(3212, 1, 10.0)) == TIMEOUT
    assert cause_of(ServerTimeoutError(-100, 0, "timeout", 3212)) == TIMEOUT
    assert cause_of(ConnectionLost("reset")) == DROPPED
    assert cause_of(OpenDError(-1, 0, "internal error", 3212)) == ERROR
    with pytest.raises(ValueError):
        HealthPolicy(sick_after=0)


# -- in the poller: which failures count, and the backoffs cleared -------------------------


async def test_the_backoffs_a_gateway_wide_fault_set_are_cleared_when_it_answers_again() -> None:
    clock = FakeClock(HK_OPEN)
    watchlist = ["HK.00001", "HK.00002", "HK.00003", "HK.00004", "HK.00005"]
    opend = FakeOpenD(clock)  # answers every request with data
    poller, _published = poller_on(clock, opend, watchlist)
    poller.health = health = GatewayHealth(POLICY, clock)
    tracker = poller.rejections
    tracker.reject("HK.00005", NO_QUOTE_RIGHT, "no quote right", clock.now)  # its own
    for _ in range(3):  # before the fault: HK.00003's own errors back it off 30 s
        tracker.error("HK.00003", "its own trouble", clock.now)
    clock.now += 5.0
    for _ in range(4):  # the fault: every request fails; each security backed off 60 s
        for security in ("HK.00001", "HK.00002"):
            tracker.error(security, "内部错误 (internal error)", clock.now)
            health.failed(security, ERROR, "内部错误 (internal error)")
            clock.now += 1.0
    assert await poller.step() == "HK.00004"  # the one left to ask: it answers
    assert [e.security for e in tracker.entries()] == ["HK.00003", "HK.00005"]
    assert {await poller.step() for _ in range(2)} == {"HK.00001", "HK.00002"}  # at once


async def test_one_securitys_errors_stay_backed_off_and_never_make_the_gateway_fail() -> None:
    clock = FakeClock(HK_OPEN)
    failure = [classify(-1, 0, "内部错误 (internal error)", 3212) for _ in range(100)]
    opend = FakeOpenD(clock, script={"HK.09988": failure})
    poller, _published = poller_on(clock, opend, ["HK.09988", "HK.00700"])
    poller.health = health = GatewayHealth(POLICY, clock)
    await run_until(poller, clock, HK_OPEN + 600)
    asks = [t for t, s in opend.requests if s == "HK.09988"]
    assert len(asks) <= 8  # still backed off: its errors are its own
    entry = poller.rejections.get("HK.09988")
    assert entry is not None and entry.retry_at > clock.now - 1
    assert health.failing_for() is None and health.check(others_up=True) is None


async def test_refusals_of_securities_are_never_the_gateways() -> None:
    clock = FakeClock(HK_OPEN)
    watchlist = ["HK.00001", "HK.00002", "US.AAPL"]
    refusals = {
        "HK.00001": [classify(-1, 0, "未知股票 HK.00001 (unknown stock)", 3212)] * 50,
        "HK.00002": [classify(-1, 0, "该品种不支持此功能 (not supported)", 3212)] * 50,
        "US.AAPL": [classify(-1, 0, "无权限获取US市场行情 (no quote right)", 3212)] * 50,
    }
    opend = FakeOpenD(clock, script=refusals)
    poller, _published = poller_on(clock, opend, watchlist)
    poller.ignore_market_hours = True
    poller.health = health = GatewayHealth(POLICY, clock)
    await run_until(poller, clock, HK_OPEN + 4000)
    assert len(opend.requests) >= 6  # asked again after each backoff, refused each time
    assert health.failing_for() is None and health.causes == {}


# -- on the control topic ---------------------------------------------------------------


def test_the_board_carries_sick_and_why_and_reads_older_records() -> None:
    import orjson

    from streams.polling.gateways import parse_gateways
    from streams.polling.status import GatewayStatusBoard, encode_status

    gateways = parse_gateways("127.0.0.1:1=a,127.0.0.1:2=b,127.0.0.1:3=c")
    board = GatewayStatusBoard("ctl", gateways, {}, worker="here")
    reader = GatewayStatusBoard("ctl", gateways, {}, worker="elsewhere")
    board.report(gateways[1], SICK, "quote requests failing for 31s")
    assert board.up_labels() == ["a", "c"] and board.state_of("b") == SICK
    record = encode_status(gateways[1], SICK, "quote requests failing for 31s", "here", 1.0)
    assert orjson.loads(record)["up"] is False  # a reader that knows only up/down moves it too
    reader.apply(b"b", record)
    assert reader.state_of("b") == SICK and reader.reason_of("b").startswith("quote requests")
    assert reader.up_labels() == ["a", "c"]
    older = orjson.dumps({"gateway": "c", "address": "127.0.0.1:3", "up": False, "worker": "w"})
    reader.apply(b"c", older)
    assert reader.state_of("c") == DOWN and reader.reason_of("c") == ""
    reader.apply(b"b", encode_status(gateways[1], UP, "", "here", 2.0))
    assert reader.up_labels() == ["a", "b"]
    reader.apply(b"a", b'["not", "a", "status"]')  # ignored, logged
    assert reader.state_of("a") == UP


async def test_capital_flow_failures_count_but_its_replies_do_not_heal() -> None:
    from streams.opend.errors import RateLimitError, UnknownSecurityError
    from tests.unit.test_history_fetch import ELEVEN, FakeClient, fetcher

    flow_clock = FakeClock(ELEVEN)
    client = FakeClient(
        [
            UnknownSecurityError(-1, 0, "unknown stock", 3211),  # the security's
            RateLimitError(-1, 0, "too frequent", 3211),  # the budget's
            OpenDError(-1, 0, "内部错误 (internal error)", 3211),  # the gateway's
        ]
    )
    history = fetcher(client, flow_clock, [], window=0.001)
    history.health = health = GatewayHealth(POLICY, flow_clock)
    for security in ("HK.99999", "HK.00700", "HK.00700"):
        assert not await history.fetch(security)
    assert health.describe()["failures"] == {ERROR: 1}
    assert "capital flow HK.00700" in health.last_error
    assert await history.fetch("HK.00700")  # a series: the streak goes on all the same
    assert health.failing_for() is not None
