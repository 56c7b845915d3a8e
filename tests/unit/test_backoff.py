"""The one retry schedule: doubling from initial, capped, jitter within its band."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.timing.backoff import Backoff


def test_doubles_from_initial_up_to_the_cap() -> None:
    b = Backoff(initial=0.5, cap=5.0, jitter=0.0)
    assert [b.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_jitter_lengthens_a_wait_and_never_passes_the_cap() -> None:
    b = Backoff(initial=1.0, cap=10.0, jitter=0.2)
    assert b.delay(1, 0.0) == 1.0 and b.delay(1, 1.0) == pytest.approx(1.2)
    assert b.delay(1) == 1.0  # no jitter unless asked
    assert b.delay(10, 1.0) == 10.0


def test_a_retry_loop_resets_after_success() -> None:
    retry = Backoff(initial=0.5, cap=30.0, jitter=0.0).waits()
    assert [retry.next_wait() for _ in range(3)] == [0.5, 1.0, 2.0]
    retry.reset()
    assert retry.next_wait() == 0.5


@pytest.mark.parametrize(("initial", "cap", "jitter"), [(0, 1, 0.1), (2, 1, 0.1), (1, 2, 1.5)])
def test_bad_schedules_are_refused(initial: float, cap: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, cap, jitter)


@given(st.integers(1, 200), st.floats(0, 1), st.floats(0.01, 5), st.floats(0, 1))
def test_every_wait_is_positive_bounded_and_grows_with_attempts(
    attempt: int, rand: float, initial: float, jitter: float
) -> None:
    b = Backoff(initial=initial, cap=initial * 50, jitter=jitter)
    wait = b.delay(attempt, rand)
    assert 0 < wait <= b.cap
    assert b.delay(attempt + 1) >= b.delay(attempt)
