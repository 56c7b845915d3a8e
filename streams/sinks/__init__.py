"""Alert sinks: integrations that read the alerts topic (console, webhook)."""

from __future__ import annotations

from streams.sinks.console import format_alert, json_line
from streams.sinks.webhook import WebhookError, WebhookSink, sign, verify_signature

__all__ = [
    "WebhookError",
    "WebhookSink",
    "format_alert",
    "json_line",
    "sign",
    "verify_signature",
]
