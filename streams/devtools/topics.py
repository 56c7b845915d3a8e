"""The capflow topics of one test or benchmark run, named after a unique prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Names ``<prefix>.distribution|flow|alerts|deadletter|capitalflow`` and the flags
    that pass them."""

    prefix: str

    @property
    def distribution(self) -> str:
        return f"{self.prefix}.distribution"

    @property
    def flow(self) -> str:
        return f"{self.prefix}.flow"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter"

    @property
    def capitalflow(self) -> str:
        return f"{self.prefix}.capitalflow"

    @property
    def names(self) -> dict[str, str]:
        """Role -> topic name, e.g. ``{"alerts": "p.alerts", ...}``."""
        return {
            "distribution": self.distribution,
            "flow": self.flow,
            "alerts": self.alerts,
            "deadletter": self.deadletter,
            "capitalflow": self.capitalflow,
        }

    def all(self) -> list[str]:
        return list(self.names.values())

    def args(self) -> list[str]:
        """``--topic-<role> NAME`` flags for any capflow command."""
        return [arg for role, name in self.names.items() for arg in (f"--topic-{role}", name)]
