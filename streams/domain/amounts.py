"""The eight cumulative amounts of a capital-distribution snapshot as one typed value.

OpenD reports, per order class (super, big, mid, small), the money that flowed in and
out since the session opened. Flows are differences of these, and corrections are
applied per amount, so the amounts travel together as :class:`Amounts` with
element-wise arithmetic instead of eight loose floats or positional tuples.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

CLASSES: tuple[str, ...] = ("super", "big", "mid", "small")
AMOUNT_NAMES: tuple[str, ...] = tuple(f"in_{c}" for c in CLASSES) + tuple(
    f"out_{c}" for c in CLASSES
)


class Amounts(NamedTuple):
    """in/out per class, cumulative since the open; the field order is AMOUNT_NAMES.

    A NamedTuple: immutable, cheap to build on the per-snapshot path, and stored as a
    plain list. ``+`` and ``-`` are element-wise (not tuple concatenation).
    """

    in_super: float = 0.0
    in_big: float = 0.0
    in_mid: float = 0.0
    in_small: float = 0.0
    out_super: float = 0.0
    out_big: float = 0.0
    out_mid: float = 0.0
    out_small: float = 0.0

    @classmethod
    def of(cls, values: Iterable[float]) -> Amounts:
        """From eight numbers in AMOUNT_NAMES order."""
        vals = [float(v) for v in values]
        if len(vals) != len(AMOUNT_NAMES):
            raise ValueError(f"expected {len(AMOUNT_NAMES)} amounts, got {len(vals)}")
        return cls(*vals)

    def values(self) -> tuple[float, ...]:
        """The eight numbers in AMOUNT_NAMES order (for storage and zips)."""
        return tuple(self)

    def __add__(self, other: Amounts) -> Amounts:  # type: ignore[override]
        return Amounts(*(a + b for a, b in zip(self, other, strict=True)))

    def __sub__(self, other: Amounts) -> Amounts:
        return Amounts(*(a - b for a, b in zip(self, other, strict=True)))

    def net(self, cls: str) -> float:
        """in - out of one class."""
        return float(getattr(self, f"in_{cls}") - getattr(self, f"out_{cls}"))

    @property
    def net_super(self) -> float:
        return self.in_super - self.out_super

    @property
    def net_big(self) -> float:
        return self.in_big - self.out_big

    @property
    def net_mid(self) -> float:
        return self.in_mid - self.out_mid

    @property
    def net_small(self) -> float:
        return self.in_small - self.out_small

    @property
    def large_net(self) -> float:
        """L = net super + net big."""
        return self.net_super + self.net_big

    @property
    def turnover(self) -> float:
        """T = the sum of all eight, added in AMOUNT_NAMES order (a fixed order keeps
        the sum monotone in each amount, which corrections rely on)."""
        return (
            self.in_super
            + self.in_big
            + self.in_mid
            + self.in_small
            + self.out_super
            + self.out_big
            + self.out_mid
            + self.out_small
        )


ZERO = Amounts()
