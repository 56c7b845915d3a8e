#!/usr/bin/env bash
# The test command: install what is missing, lint, type-check, run every test
# (unit, property and integration against a real Kafka broker and the OpenD simulator)
# and print the slowest 25.
#
#   bash scripts/test.sh            everything (what CI runs)
#   bash scripts/test.sh --fast     ruff, mypy, unit and property tests only (no broker)
#
# Further arguments go to pytest, e.g. `bash scripts/test.sh --fast -x tests/unit/test_flow.py`.
set -euo pipefail
cd "$(dirname "$0")/.."
select=()
if [[ "${1:-}" == "--fast" ]]; then
    shift
    select=(-m "not integration")
fi
bash scripts/bootstrap.sh --with-test-tools
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 "${select[@]}" "$@"
