"""Kafka's one home in capflow: what every component does with the cluster.

``preflight``: one connection with the command's settings before anything else, so a
wrong password, an untrusted certificate or a missing ACL ends a command in a second.
``topics``: creating topics (and checking the ones that exist), their limits.
``partitions``: every partition of a topic for a reader without a consumer group.
``reading``: a topic from its beginning to its end. ``sending``: one record written
until the broker acknowledges it, waiting out outages on the one retry schedule.
"""
