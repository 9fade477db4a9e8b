#!/usr/bin/env bash
# Install what the real-browser WebRTC test (tests/browser) needs, as root on
# Debian 12. Idempotent: a second run only checks. Used by scripts/test.sh.
#   - Debian's Chromium (/usr/bin/chromium; playwright's own browser
#     download is never used)
#   - Node.js and npm (Debian 12's nodejs is 18: enough, see below)
#   - tests/browser/node_modules from package-lock.json: sip.js 0.21.2 (the
#     current API), sip.js 0.7.8 as "sip.js-legacy" (the legacy SIP.UA API;
#     only its browser bundle is served) and playwright-core 1.61.1 (the last
#     playwright-core that runs on Node 18; 1.62 and later need Node 20)
# apt-get update runs only when something has to be installed from apt.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "install-browser: run as root (apt-get)" >&2
    exit 2
fi

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-browser: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
    echo "install-browser: Node.js $(node -v) is too old; sip.js 0.21 and playwright-core 1.61 need Node 18 or later" >&2
    exit 1
fi

# npm ci is exact (package-lock.json) but wipes node_modules; skip it when
# the installed tree already matches the lock file.
cd tests/browser
stamp=node_modules/.c2d-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ] \
        || [ ! -f node_modules/sip.js/package.json ] || [ ! -f node_modules/sip.js-legacy/package.json ] \
        || [ ! -f node_modules/playwright-core/package.json ]; then
    echo "install-browser: npm ci in tests/browser"
    npm ci --no-audit --no-fund --loglevel=error
    touch "$stamp"
fi

echo "install-browser: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium ?'), node $(node -v)," \
     "sip.js $(node -p 'require("./node_modules/sip.js/package.json").version')," \
     "playwright-core $(node -p 'require("./node_modules/playwright-core/package.json").version')"

# Client generators for tests/integration/test_generated_clients.py (clients
# generated from the served OpenAPI document, used against the sandbox):
#   - tests/clients/node_modules from its package-lock.json: openapi-typescript,
#     openapi-fetch and typescript (tsc);
#   - .venv-openapi: openapi-python-client (and python-dateutil, which the
#     clients it generates import), kept apart from the service's .venv.
cd ../clients   # from tests/browser
stamp=node_modules/.c2d-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
    echo "install-browser: npm ci in tests/clients"
    npm ci --no-audit --no-fund --loglevel=error
    touch "$stamp"
fi
cd ../..
gen_stamp=.venv-openapi/.c2d-installed
if [ ! -f "$gen_stamp" ]; then
    echo "install-browser: openapi-python-client in .venv-openapi"
    python3 -m venv .venv-openapi
    .venv-openapi/bin/python -m pip install -q openapi-python-client==0.29.1 python-dateutil==2.9.0.post0
    touch "$gen_stamp"
fi
