#!/usr/bin/env bash
# Install everything capflow needs on a fresh Debian/Ubuntu machine (idempotent):
# Java 17+ and Maven for the local Kafka broker, a Python >= 3.11 virtualenv in .venv
# with capflow and its dev tools, and the Kafka broker jars (cached by mvn).
# --with-test-tools also installs what only the tests need: Alertmanager (Debian's
# prometheus-alertmanager) for the Alertmanager sink's integration test.
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST_TOOLS=""
for arg in "$@"; do
  case "$arg" in
    --with-test-tools) WITH_TEST_TOOLS=1 ;;
    *) printf 'bootstrap: unknown option %s (only --with-test-tools)\n' "$arg" >&2; exit 2 ;;
  esac
done

say() { printf 'bootstrap: %s\n' "$*"; }

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing $* and no apt-get here: install them by hand"; exit 1
  fi
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if [ -z "${_APT_UPDATED:-}" ]; then $sudo apt-get update -qq; _APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1
}

if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then
  say "installing Java 17"; apt_install openjdk-17-jre-headless
fi
if ! command -v mvn >/dev/null 2>&1; then
  say "installing Maven"; apt_install maven
fi
if [ -n "$WITH_TEST_TOOLS" ] && ! command -v prometheus-alertmanager >/dev/null 2>&1 \
    && ! command -v alertmanager >/dev/null 2>&1; then
  say "installing Alertmanager (tests of the Alertmanager sink)"
  apt_install prometheus-alertmanager
fi

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  say "installing python3 (>= 3.11 needed)"; apt_install python3 python3-venv python3-pip
  PY=python3
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv 2>/dev/null || { apt_install python3-venv; "$PY" -m venv .venv; }
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  say "installing capflow and dev dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch .venv/.installed
fi
# Fetch the broker jars now so the first test or demo run does not wait on Maven
# (into CAPFLOW_CACHE_DIR when it is set: `capflow kafka` and the tests' broker look there).
.venv/bin/python -c '
from streams.broker.resolve import require_java, resolve_jars
from streams.settings import LocalKafkaSettings
from streams.settings.declare import from_environment
require_java()
resolve_jars(cache_dir=from_environment(LocalKafkaSettings).cache_dir)'
say "ready (.venv/bin/capflow)"
