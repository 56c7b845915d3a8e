"""Fixtures of the unit tests: the shared fakes (``tests/fakes.py``) at their usual start."""

from __future__ import annotations

import pytest

from tests.fakes import HK_OPEN, FakeClock, FakeOpenD


@pytest.fixture
def clock() -> FakeClock:
    """A fake wall clock at 10:00 on a Hong Kong trading day (US closed)."""
    return FakeClock(HK_OPEN)


@pytest.fixture
def opend(clock: FakeClock) -> FakeOpenD:
    """An OpenD that answers every request with data, on ``clock``."""
    return FakeOpenD(clock)
