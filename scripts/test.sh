#!/usr/bin/env bash
# Run every test: unit tests, integration tests against the real Asterisk 22
# bench with SIPp peers, and the real-browser WebRTC test.
# Installs what it needs first (scripts/setup.sh). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f scripts/install-browser.sh ]; then
    bash scripts/install-browser.sh
fi
exec .venv/bin/python -m pytest "$@"
