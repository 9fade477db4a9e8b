#!/usr/bin/env bash
# The benchmark (issue 8): call set-up latency, capacity, CPU and memory of the
# service against bare Asterisk, on the real Asterisk 22 bench with SIPp peers.
# Method and the latest figures: docs/performance.md.
#
#   bash scripts/bench.sh                  full run, under 10 minutes on 2 cores
#   bash scripts/bench.sh --quick          short ramps, about 3 minutes
#   bash scripts/bench.sh --update-docs    also put the table into docs/performance.md
#   bash scripts/bench.sh --help           every option
#
# Prints a table; writes bench-results/latest.json (every figure) and
# bench-results/latest.md (the table). Run as root, nothing else using
# Asterisk's ports (5060, 8088) — or in a network namespace of its own, see
# docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m bench.run "$@"
