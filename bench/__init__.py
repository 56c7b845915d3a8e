"""Benchmarks of capflow (run from the repository root: python -m bench.<name>)."""
