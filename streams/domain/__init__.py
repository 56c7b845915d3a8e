"""capflow's domain: markets and security codes, amounts, snapshot validation."""
