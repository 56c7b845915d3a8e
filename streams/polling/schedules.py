"""Schedulers by name, for ``--schedule``: each gateway's poller gets its own instance.

Round-robin is always there. A policy module registers itself here by name (the
adaptive scheduler: ``streams.polling.adaptive`` exposing
``from_args(args) -> Scheduler``), and ``--schedule`` offers only the names present.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from streams.polling.scheduler import RoundRobin, Scheduler

SchedulerFactory = Callable[[argparse.Namespace], Scheduler]

DEFAULT_SCHEDULE = "round-robin"


def _round_robin(args: argparse.Namespace) -> Scheduler:
    return RoundRobin()


def factories() -> dict[str, SchedulerFactory]:
    """Every schedule this installation knows, by ``--schedule`` name."""
    known: dict[str, SchedulerFactory] = {DEFAULT_SCHEDULE: _round_robin}
    try:
        adaptive = importlib.import_module("streams.polling.adaptive")
    except ImportError:
        return known
    from_args = getattr(adaptive, "from_args", None)
    if callable(from_args):
        known["adaptive"] = from_args
    return known


def make_scheduler(name: str, args: argparse.Namespace | None = None) -> Scheduler:
    """A new scheduler of the named policy (ValueError naming the known ones otherwise)."""
    known = factories()
    if name not in known:
        raise ValueError(f"unknown schedule {name!r}: expected one of {', '.join(sorted(known))}")
    return known[name](args if args is not None else argparse.Namespace())
