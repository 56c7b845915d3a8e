"""Pacing: how often capflow may ask, and how long it waits before asking again.

``ratelimit``: the sliding-window limiter that spends (poller) and enforces (simulator)
OpenD's request budgets. ``backoff``: the one retry schedule (capped exponential, with
jitter) of every retry loop: OpenD reconnects, Kafka writes, sink deliveries.
"""
