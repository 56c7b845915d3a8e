#!/usr/bin/env bash
# The test command: install what is missing, lint, type-check, run every test
# (unit, property and integration against a real Kafka broker and the OpenD simulator).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --with-test-tools
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
