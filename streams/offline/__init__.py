"""Work on recorded days, away from the live pipeline: JSON-lines recordings of the
topics, the backtest that runs the worker's own step over them, and the charts."""
