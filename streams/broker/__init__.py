"""A real single-node Apache Kafka (KRaft) for development, tests and the demo."""
