"""Alert events read back from a topic, decoded by the same strict decoder the sinks use."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams.sinks.follower import decode_alert


def alerts_of(records: Iterable[Any]) -> list[dict[str, Any]]:
    """The alert events of consumer records; a malformed one raises ValueError."""
    return [decode_alert(r.value) for r in records]
