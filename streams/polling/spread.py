"""Which gateway polls which security: rendezvous (highest-random-weight) hashing.

Every security goes to the up gateway with the highest hash of (security, gateway
label). The result depends only on the security and the up set, so every worker
computes the same spread without talking to the others; a security stays on its
gateway while the up set is unchanged; when a gateway goes down only its own
securities move (each to its next-highest gateway) and they come back when it
returns. Labels, not list positions, are hashed, so reordering the list moves nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(security: str, label: str) -> int:
    """A stable 64-bit weight (not Python's ``hash``, which differs per process)."""
    digest = hashlib.blake2b(f"{security}\x00{label}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(security: str, up: Iterable[str]) -> str | None:
    """The label of the gateway that polls ``security`` (None when no gateway is up)."""
    best: tuple[int, str] | None = None
    for label in up:
        candidate = (weight(security, label), label)
        if best is None or candidate > best:
            best = candidate
    return None if best is None else best[1]


def share(securities: Iterable[str], up: Iterable[str], label: str) -> list[str]:
    """The securities ``label`` polls, in their given order (empty when it is not up)."""
    up_set = frozenset(up)
    if label not in up_set:
        return []
    return [s for s in securities if owner(s, up_set) == label]


def spread(securities: Iterable[str], up: Iterable[str]) -> dict[str, list[str]]:
    """Every up gateway's securities (a gateway with none is listed with an empty list)."""
    up_set = frozenset(up)
    out: dict[str, list[str]] = {label: [] for label in sorted(up_set)}
    for security in securities:
        label = owner(security, up_set)
        if label is not None:
            out[label].append(security)
    return out
