"""Which gateway polls which security: rendezvous hashing with bounded loads.

A gateway's staleness is the size of its share (one request per second each), so the
shares must be even: plain rendezvous hashing leaves them +-10 % apart at a few
hundred securities, and the largest share sets the worst staleness. Two steps, both
functions of the watchlist and the gateway labels only, so every worker computes the
same spread without talking to the others:

1. Home: over every *configured* gateway, each security (in a fixed order: by its own
   hash) goes to the gateway of highest weight (security, label) that still has room
   under ceil(N / K). Shares differ by at most one; a security's home never depends
   on which gateways are up.
2. Away: the securities whose home is down go, in the same order, to the up gateway
   of highest weight with room under ceil(N / K_up).

So a security stays on its gateway while the up set is unchanged, when a gateway goes
down only its own securities move, and when it returns they come back exactly.
Labels, not list positions, are hashed: reordering the list moves nothing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from functools import lru_cache


def weight(security: str, label: str) -> int:
    """A stable 64-bit weight (not Python's ``hash``, which differs per process)."""
    digest = hashlib.blake2b(f"{security}\x00{label}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _place(
    securities: Sequence[str], labels: Sequence[str], loads: dict[str, list[str]], cap: int
) -> None:
    """Each security to its highest-weight label with fewer than ``cap`` securities."""
    for security in securities:
        ranked = sorted(labels, key=lambda label: (weight(security, label), label), reverse=True)
        target = next(label for label in ranked if len(loads[label]) < cap)
        loads[target].append(security)


@lru_cache(maxsize=64)
def _spread(
    securities: tuple[str, ...], up: frozenset[str], configured: frozenset[str]
) -> dict[str, tuple[str, ...]]:
    order = sorted(set(securities), key=lambda s: (weight(s, ""), s))
    home: dict[str, list[str]] = {label: [] for label in sorted(configured)}
    if order and home:
        _place(order, sorted(configured), home, math.ceil(len(order) / len(configured)))
    shares = {label: home[label] for label in sorted(up)}
    away = [s for label in sorted(configured - up) for s in home[label]]
    if shares and away:
        away.sort(key=lambda s: (weight(s, ""), s))
        _place(away, sorted(up), shares, math.ceil(len(order) / len(up)))
    position = {s: i for i, s in enumerate(securities)}
    return {label: tuple(sorted(part, key=position.__getitem__)) for label, part in shares.items()}


def spread(
    securities: Iterable[str], up: Iterable[str], configured: Iterable[str] | None = None
) -> dict[str, list[str]]:
    """Every up gateway's securities, in watchlist order (an empty list for none).

    ``configured`` is every gateway of the deployment (default: the up ones); labels of
    ``up`` that are not configured are ignored.
    """
    up_set = frozenset(up)
    conf = up_set if configured is None else frozenset(configured)
    parts = _spread(tuple(dict.fromkeys(securities)), up_set & conf, conf)
    return {label: list(part) for label, part in parts.items()}


def share(
    securities: Iterable[str],
    up: Iterable[str],
    label: str,
    configured: Iterable[str] | None = None,
) -> list[str]:
    """The securities ``label`` polls, in their given order (empty when it is not up)."""
    return spread(securities, up, configured).get(label, [])


def owner(
    security: str,
    securities: Iterable[str],
    up: Iterable[str],
    configured: Iterable[str] | None = None,
) -> str | None:
    """The label of the gateway that polls ``security`` (None when no gateway is up)."""
    for label, part in spread(securities, up, configured).items():
        if security in part:
            return label
    return None
