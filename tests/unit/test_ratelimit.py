"""Sliding-window limiter on a hand-driven clock."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from streams.timing.ratelimit import SlidingWindowLimiter
from tests.fakes import FakeClock


def test_admits_limit_then_refuses_until_oldest_leaves() -> None:
    clock = FakeClock(0.0)
    lim = SlidingWindowLimiter(30, 30.0, clock)
    for _ in range(30):
        assert lim.try_acquire()
    assert not lim.try_acquire()
    assert lim.delay() == 30.0
    clock.now = 29.999
    assert not lim.try_acquire()
    clock.now = 30.0
    assert lim.try_acquire()
    assert lim.used() == 1


def test_boundary_burst_is_refused() -> None:
    """A fixed bucket would allow 30 at t=29 and 30 more at t=30; a sliding window must not."""
    clock = FakeClock(0.0)
    lim = SlidingWindowLimiter(30, 30.0, clock)
    clock.now = 29.0
    assert sum(lim.try_acquire() for _ in range(30)) == 30
    clock.now = 30.5
    assert sum(lim.try_acquire() for _ in range(30)) == 0
    clock.now = 59.0
    assert sum(lim.try_acquire() for _ in range(30)) == 30


def test_penalize_fills_the_window() -> None:
    clock = FakeClock(0.0)
    lim = SlidingWindowLimiter(5, 10.0, clock)
    lim.penalize()
    assert not lim.try_acquire()
    clock.now = 10.0
    assert lim.try_acquire()


@given(
    limit=st.integers(1, 10),
    window=st.floats(0.5, 20.0),
    gaps=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=200),
)
def test_no_window_ever_holds_more_than_limit(limit: int, window: float, gaps: list[float]) -> None:
    clock = FakeClock(0.0)
    lim = SlidingWindowLimiter(limit, window, clock)
    admitted: list[float] = []
    for gap in gaps:
        clock.now += gap
        if lim.try_acquire():
            admitted.append(clock.now)
    for i, start in enumerate(admitted):
        inside = [t for t in admitted[i:] if t - start < window]
        assert len(inside) <= limit


async def test_acquire_waits_on_fake_sleep() -> None:
    clock = FakeClock(0.0)
    lim = SlidingWindowLimiter(2, 10.0, clock)
    for _ in range(3):
        await lim.acquire(sleep=clock.sleep)
    assert clock.sleeps == [10.0]
    assert clock.now == 10.0


def test_spacing_spreads_the_budget_evenly() -> None:
    clock = FakeClock(0.0)
    lim = SlidingWindowLimiter(30, 30.0, clock, spacing=1.0)
    assert lim.try_acquire()
    assert not lim.try_acquire()
    assert lim.delay() == 1.0
    clock.now = 1.0
    assert lim.try_acquire()


@given(gaps=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=100))
def test_spacing_never_breaks_the_window(gaps: list[float]) -> None:
    clock = FakeClock(0.0)
    lim = SlidingWindowLimiter(5, 10.0, clock, spacing=1.5)
    admitted: list[float] = []
    for gap in gaps:
        clock.now += gap
        if lim.try_acquire():
            admitted.append(clock.now)
    assert all(b - a >= 1.5 for a, b in itertools.pairwise(admitted))
    for i, start in enumerate(admitted):
        assert len([t for t in admitted[i:] if t - start < 10.0]) <= 5


def _sustained_share(window: float, limit: int = 30, windows: int = 40) -> float:
    """Share of the server's budget a limiter built like the worker's spends when saturated."""
    from streams.timing.ratelimit import limit_margin

    clock = FakeClock(0.0)
    ours = window + limit_margin(window)
    limiter = SlidingWindowLimiter(limit, ours, clock, spacing=ours / limit)
    admitted = 0
    end = windows * window
    while clock.now < end:
        if limiter.try_acquire():
            admitted += 1
        clock.now += limiter.delay() or 1e-6
    return admitted / (limit * windows)


def test_margin_is_half_a_second_on_opend_window() -> None:
    from streams.timing.ratelimit import limit_margin

    assert limit_margin(30.0) == 0.5


def test_margin_scales_so_speeded_windows_spend_the_same_share() -> None:
    # OpenD's 30 s window and the same window at simulator speed 20 (1.5 s).
    real, fast = _sustained_share(30.0), _sustained_share(1.5)
    assert real > 0.98
    assert fast > 0.98
    assert abs(real - fast) < 0.005
