#!/usr/bin/env bash
# Run every test: unit tests, integration tests against the real Asterisk 22
# bench with SIPp peers, and the real-browser WebRTC test.
# Unless the arguments name tests (a path), the tests marked admin_configs
# then run a second time on the administrator-style Asterisk configs
# (C2D_BENCH_CONFIGS=admin), and the test files listed in
# tests/postgresql-suite.txt on PostgreSQL as the store
# (C2D_BENCH_STORE=postgresql). Options alone (-q, -p ...) keep both passes.
# Installs what it needs first (scripts/setup.sh). Extra arguments go to pytest.
# Afterwards it checks that the bench left nothing behind: no process
# chrooted into a bench root and no bind mount under it.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit $?
if [ -f scripts/install-browser.sh ]; then
    bash scripts/install-browser.sh || exit $?
fi
.venv/bin/python -m pytest "$@"
status=$?
whole=1        # no argument names a test file or directory: the whole suite ran
for arg in "$@"; do
    [ -e "${arg%%::*}" ] && whole=0
done
if [ $whole -eq 1 ] && [ -z "${C2D_BENCH_CONFIGS:-}" ]; then
    # The key promises once more, on an administrator's own Asterisk configs
    # (tests/README.md): none may depend on a value of asterisk_conf/.
    C2D_BENCH_CONFIGS=admin .venv/bin/python -m pytest -q -p no:cacheprovider -rfE -m admin_configs tests/integration || status=1
fi
if [ $whole -eq 1 ] && [ -z "${C2D_BENCH_STORE:-}" ]; then
    # The single-node suite's files that touch the store, on PostgreSQL as the
    # store: placing, browser and FastAGI calls, keys, caps, pools, recovery
    # and events, each service on a database of a PostgreSQL server started
    # once for this run (testbed/postgres.py).
    C2D_BENCH_STORE=postgresql .venv/bin/python -m pytest -q -p no:cacheprovider -rfE \
        $(grep -v '^#' tests/postgresql-suite.txt) || status=1
fi
.venv/bin/python - <<'PY' || status=1
import sys
from testbed.asterisk import _mounts_under, processes_in
from testbed.root import root_path
root = root_path()
procs, mounts = processes_in(root), _mounts_under(root)
if procs or mounts:
    print(f"bench left behind: processes {procs}, mounts {mounts}", file=sys.stderr)
    sys.exit(1)
print("bench: no process and no mount left behind")
PY
exit $status
