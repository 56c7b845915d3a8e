"""The stall watchdog's decision on a fake clock: lag without processing for the timeout is
a stall, reported once; idle, slow-but-moving and unknown-lag partitions never are."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.pipeline.stall import Stall, StallReport, StallWatch, check_interval

P0, P1 = ("snapshots", 0), ("snapshots", 1)
TIMEOUT = 60.0


def run(watch: StallWatch, checks: list[tuple[float, int | None, int | None]]) -> list[StallReport]:
    """One partition (P0): (time, lag, last processed offset) at each check."""
    reports = []
    for now, lag, offset in checks:
        processed = {} if offset is None else {P0: offset}
        reports.append(watch.check(now, {P0: lag}, processed))
    return reports


def test_lag_without_processing_is_a_stall_once_the_timeout_has_passed() -> None:
    reports = run(StallWatch(TIMEOUT), [(t, 7, 41) for t in range(0, 200, 15)])
    stalled = [(i, r.stalled) for i, r in enumerate(reports) if r.stalled]
    assert stalled == [(4, [Stall(P0, 7, 60.0)])]  # at t = 60, and only then


def test_an_idle_partition_is_never_stalled() -> None:
    reports = run(StallWatch(TIMEOUT), [(t, 0, 41) for t in range(0, 3600, 15)])
    assert not any(reports)


def test_a_slow_partition_that_keeps_processing_is_not_stalled() -> None:
    # Always behind, one record processed every 45 s: slow, but moving.
    checks = [(t, 500, t // 45) for t in range(0, 3600, 15)]
    assert not any(run(StallWatch(TIMEOUT), checks))


def test_the_wait_starts_when_the_lag_appears_not_at_the_last_record() -> None:
    # Idle for an hour after its last record; then new records wait 45 s: not yet a stall.
    checks = [(t, 0, 9) for t in range(0, 3600, 15)] + [(3600 + t, 3, 9) for t in (0, 15, 45)]
    assert not any(run(StallWatch(TIMEOUT), checks))


def test_processing_again_resumes_a_stalled_partition_and_a_new_stall_is_reported() -> None:
    checks = [(0, 5, 1), (60, 5, 1), (75, 4, 2), (135, 4, 2)]
    reports = run(StallWatch(TIMEOUT), checks)
    assert [r.stalled for r in reports] == [[], [Stall(P0, 5, 60.0)], [], [Stall(P0, 4, 60.0)]]
    assert reports[2].resumed == [P0]


def test_no_lag_resumes_too() -> None:
    reports = run(StallWatch(TIMEOUT), [(0, 5, 1), (60, 5, 1), (75, 0, 1)])
    assert reports[2] == StallReport(resumed=[P0])


def test_unknown_lag_decides_nothing_and_restarts_the_wait() -> None:
    # The broker did not answer for ten minutes (nothing processed meanwhile either).
    checks = [(0, 5, 1), (30, None, 1), (600, None, 1), (630, 5, 1), (660, 5, 1), (690, 5, 1)]
    reports = run(StallWatch(TIMEOUT), checks)
    assert [bool(r.stalled) for r in reports] == [False] * 5 + [True]


def test_a_revoked_partition_is_forgotten() -> None:
    watch = StallWatch(TIMEOUT)
    watch.check(0, {P0: 5, P1: 5}, {P0: 1, P1: 1})
    assert watch.check(60, {P0: 5, P1: 5}, {P0: 1, P1: 1}).stalled == [
        Stall(P0, 5, 60.0),
        Stall(P1, 5, 60.0),
    ]
    watch.check(61, {P0: 5}, {P0: 1})  # P1 went to another worker
    assert watch.check(70, {P0: 5, P1: 5}, {P0: 1, P1: 1}).stalled == []  # back: a new wait
    assert watch.check(131, {P0: 5, P1: 5}, {P0: 1, P1: 1}).stalled == [Stall(P1, 5, 61.0)]


def test_a_partition_never_processed_here_waits_from_its_first_check() -> None:
    reports = run(StallWatch(TIMEOUT), [(0, 9, None), (59, 9, None), (60, 9, None)])
    assert [r.stalled for r in reports] == [[], [], [Stall(P0, 9, 60.0)]]


def test_check_interval_is_a_fraction_of_the_timeout_and_bounded() -> None:
    assert check_interval(2.0) == 0.5
    assert check_interval(60.0) == 5.0


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.1, max_value=30.0),  # seconds to the next check
            st.one_of(st.none(), st.integers(min_value=0, max_value=100)),  # lag
            st.booleans(),  # a record was processed since the last check
        ),
        max_size=60,
    )
)
def test_no_stall_while_every_wait_is_shorter_than_the_timeout(
    steps: list[tuple[float, int | None, bool]],
) -> None:
    watch = StallWatch(TIMEOUT)
    now, offset, waiting_since = 0.0, 0, 0.0
    for dt, lag, moved in steps:
        now += dt
        offset += moved
        report = watch.check(now, {P0: lag}, {P0: offset})
        if lag is None or lag <= 0 or moved:
            waiting_since = now
        if report.stalled:
            assert now - waiting_since >= TIMEOUT
