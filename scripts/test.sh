#!/usr/bin/env bash
# The test command: install what is missing, lint, type-check, run every test
# (unit, property and integration against a real Kafka broker and the OpenD simulator)
# and print the slowest 25.
#
#   bash scripts/test.sh            everything (what CI runs)
#   bash scripts/test.sh --fast     ruff, mypy, unit and property tests only (no broker)
#
# The full run starts one Kafka broker for the whole run (unless CAPFLOW_KAFKA_BOOTSTRAP
# names one) and spreads the tests over CAPFLOW_TEST_PROCESSES pytest-xdist processes
# (default 3): most integration tests wait on a simulated market, not on a CPU.
# Further arguments go to pytest, e.g. `bash scripts/test.sh --fast -x tests/unit/test_flow.py`.
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0
if [[ "${1:-}" == "--fast" ]]; then
    shift
    fast=1
fi
bash scripts/bootstrap.sh --with-test-tools
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
pytest=(.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25)
if (( fast )); then
    echo "== pytest (unit and property tests)"
    exec "${pytest[@]}" -m "not integration" "$@"
fi

if [[ -z "${CAPFLOW_KAFKA_BOOTSTRAP:-}" ]]; then
    broker_dir="$(mktemp -d "${TMPDIR:-/tmp}/capflow-test-kafka.XXXXXX")"
    stop_broker() {
        .venv/bin/capflow kafka stop --data-dir "$broker_dir" >/dev/null 2>&1 || true
        rm -rf "$broker_dir"
    }
    trap stop_broker EXIT
    port="$(.venv/bin/python -c 'from streams.broker.local import free_port_pair; print(free_port_pair())')"
    echo "== kafka (one broker for the run, port $port)"
    .venv/bin/capflow kafka start --data-dir "$broker_dir" --port "$port"
    export CAPFLOW_KAFKA_BOOTSTRAP="127.0.0.1:$port"
fi
processes="${CAPFLOW_TEST_PROCESSES:-3}"
echo "== pytest ($processes processes)"
"${pytest[@]}" -n "$processes" --dist worksteal "$@"
