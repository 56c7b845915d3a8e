"""The Parquet archive of capflow's topics (``capflow archive``, ``capflow history``).

``datasets`` says what each dataset holds (columns derived from the records),
``layout`` where its files live and how they are named, ``writer`` writes one offset
range durably with DuckDB, ``follower`` follows the topics as a consumer group and
``query`` reads the days asked for. docs/archive.md is the user's description.
"""
