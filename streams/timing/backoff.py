"""The one retry schedule of capflow: capped exponential backoff with jitter.

Every loop that retries (an OpenD reconnect, a Kafka write waiting out an outage, an
alert delivery, a gateway that refuses connections) waits ``initial`` seconds after
its first failure, twice as long after each further one, never more than ``cap``;
``jitter`` lengthens each wait by up to that fraction, so clients that failed together
do not retry together. Pure: the random source is injected.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Waits after failed attempts: ``initial`` * 2^(n-1), at most ``cap``, plus up to
    ``jitter`` of it."""

    initial: float = 0.5
    cap: float = 30.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.cap:
            raise ValueError(f"need 0 < initial <= cap, got {self.initial} and {self.cap}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")

    def delay(self, attempt: int, rand: float = 0.0) -> float:
        """The wait after failed attempt ``attempt`` (1-based); ``rand`` in [0, 1] picks how
        much of the jitter it gets (0: none). Never above ``cap``."""
        if attempt < 1:
            raise ValueError(f"attempts count from 1, got {attempt}")
        base = min(self.initial * 2.0 ** min(attempt - 1, 64), self.cap)
        return min(base * (1.0 + self.jitter * min(max(rand, 0.0), 1.0)), self.cap)

    def waits(self, rand: Callable[[], float] = random.random) -> Retry:
        """A fresh sequence of waits for one retry loop (``next_wait()``, ``reset()``)."""
        return Retry(self, rand)


class Retry:
    """One loop's position in a :class:`Backoff`: the next wait, and a reset on success."""

    def __init__(self, backoff: Backoff, rand: Callable[[], float] = random.random) -> None:
        self.backoff = backoff
        self._rand = rand
        self.attempts = 0

    def next_wait(self) -> float:
        """The wait after one more failed attempt."""
        self.attempts += 1
        return self.backoff.delay(self.attempts, self._rand())

    def reset(self) -> None:
        """The attempt succeeded: the next failure starts from ``initial`` again."""
        self.attempts = 0
