#!/usr/bin/env bash
# The main job, end to end: bring up Asterisk 22 and SIPp phones (an agent
# and the PSTN trunk), start platforma-c2d, place real click-to-dial calls
# through its REST API, show each call's journey and its CDR rows, stop all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
