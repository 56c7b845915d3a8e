"""Alert sinks: integrations that read the alerts topic.

console (readable lines, JSON lines), webhook (signed CloudEvents), chat (Slack,
Discord, Telegram), alertmanager (Alertmanager v2 API); ``delivery`` retries one
alert on one sink and dead-letters what cannot be delivered; ``dispatch`` hands
one alert to every sink; ``follower`` reads the topic and commits only after an
alert was handled (``commits``: in the background, coalesced; ``stop``: a stop that
lets an attempt under way finish); ``delivery_loop`` wires them for ``capflow alerts``.
"""

from __future__ import annotations

from streams.sinks.console import format_alert, json_line
from streams.sinks.http import DeliveryError, Sink
from streams.sinks.webhook import WebhookSink, sign, verify_signature

__all__ = [
    "DeliveryError",
    "Sink",
    "WebhookSink",
    "format_alert",
    "json_line",
    "sign",
    "verify_signature",
]
