"""What a running capflow tells its operators: Prometheus metrics and logs with every
secret masked."""
