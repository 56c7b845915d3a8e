"""Refused securities come back: backoff in minutes, then hours, never for good."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.polling.rejections import (
    ERROR,
    ERROR_BACKOFF,
    NO_QUOTE_RIGHT,
    REJECTION_BACKOFF,
    UNKNOWN,
    RejectionTracker,
)

T0 = 1_700_000_000.0


def test_rejection_waits_minutes_then_hours_and_keeps_the_reason() -> None:
    tracker = RejectionTracker()
    now = T0
    waits = []
    for _ in range(7):
        entry = tracker.reject("HK.99999", UNKNOWN, "未知股票 HK.99999", now)
        waits.append(entry.retry_at - now)
        assert tracker.blocked("HK.99999", now)
        assert not tracker.blocked("HK.99999", entry.retry_at)
        now = entry.retry_at
    assert waits[:5] == list(REJECTION_BACKOFF)
    assert waits[0] == 60.0 and waits[-1] == 4 * 3600.0  # minutes first, hours later
    entry = tracker.get("HK.99999")
    assert entry is not None and entry.count == 7 and entry.since == T0
    assert entry.reason == "未知股票 HK.99999" and entry.kind == UNKNOWN


def test_success_clears_the_streak() -> None:
    tracker = RejectionTracker()
    tracker.reject("US.AAPL", NO_QUOTE_RIGHT, "no quote right", T0)
    tracker.success("US.AAPL")
    assert "US.AAPL" not in tracker and not tracker.blocked("US.AAPL", T0)
    assert tracker.reject("US.AAPL", NO_QUOTE_RIGHT, "again", T0 + 1).count == 1


def test_unrecognised_error_is_retried_then_backed_off() -> None:
    tracker = RejectionTracker(error_tolerance=2)
    first = tracker.error("HK.00700", "网络异常", T0)
    second = tracker.error("HK.00700", "网络异常", T0 + 1)
    assert first.retry_at == T0 and second.retry_at == T0 + 1  # asked again at once
    third = tracker.error("HK.00700", "网络异常", T0 + 2)
    assert third.retry_at == T0 + 2 + ERROR_BACKOFF[0] and third.kind == ERROR
    assert tracker.blocked("HK.00700", T0 + 3)


def test_a_different_kind_starts_a_new_streak() -> None:
    tracker = RejectionTracker()
    for i in range(3):
        tracker.reject("HK.00700", UNKNOWN, "unknown", T0 + i)
    entry = tracker.reject("HK.00700", NO_QUOTE_RIGHT, "no right", T0 + 10)
    assert entry.count == 1 and entry.since == T0 + 10


def test_entries_and_next_retry_for_metrics() -> None:
    tracker = RejectionTracker()
    assert tracker.next_retry() is None and tracker.entries() == []
    tracker.reject("US.AAPL", NO_QUOTE_RIGHT, "x", T0)
    tracker.reject("HK.99999", UNKNOWN, "y", T0 + 5)
    assert [e.security for e in tracker.entries()] == ["HK.99999", "US.AAPL"]
    assert tracker.next_retry() == T0 + 60.0
    view = tracker.entries()[0].as_dict(T0 + 5)
    assert view["retry_in_s"] == 60.0 and view["reason"] == "y"


@pytest.mark.parametrize(
    "kwargs",
    [{"rejection_backoff": ()}, {"error_backoff": (0.0,)}, {"error_tolerance": -1}],
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RejectionTracker(**kwargs)  # type: ignore[arg-type]


@given(
    events=st.lists(
        st.tuples(st.sampled_from(["reject", "error", "success"]), st.floats(0, 7200)),
        max_size=40,
    )
)
def test_never_blocked_longer_than_the_longest_wait(events: list[tuple[str, float]]) -> None:
    tracker = RejectionTracker()
    now = T0
    longest = max(max(REJECTION_BACKOFF), max(ERROR_BACKOFF))
    for action, step in events:
        now += step
        if action == "reject":
            entry = tracker.reject("S", UNKNOWN, "r", now)
        elif action == "error":
            entry = tracker.error("S", "e", now)
        else:
            tracker.success("S")
            assert not tracker.blocked("S", now)
            continue
        assert now <= entry.retry_at <= now + longest
        assert not tracker.blocked("S", now + longest)
