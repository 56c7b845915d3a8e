"""Kafka errors the command line reports, importable without loading the client."""

from __future__ import annotations


class KafkaAccessError(RuntimeError):
    """Kafka cannot be used with these settings; the message says why and what to check."""
