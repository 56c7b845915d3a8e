"""Polling OpenD on a rate-limited timer and publishing snapshots to Kafka."""
