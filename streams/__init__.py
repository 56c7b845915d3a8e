"""capflow: OpenD capital distribution -> Kafka -> rolling flows and reversal alerts."""

__version__ = "0.1.0"
