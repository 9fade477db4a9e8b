#!/usr/bin/env bash
# Run every test: unit tests, integration tests against the real Asterisk 22
# bench with SIPp peers, and the real-browser WebRTC test.
# Unless the arguments name tests (a path), the tests marked admin_configs
# then run a second time on the administrator-style Asterisk configs
# (C2D_BENCH_CONFIGS=admin) with PostgreSQL as the store, and the rest of
# the single-node integration and browser tests on PostgreSQL
# (C2D_BENCH_STORE=postgresql; the files left out, and why, in
# tests/postgresql-suite.txt). Options alone (-q, -p ...) keep both passes.
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
admin_on_pg=0  # the admin pass ran on PostgreSQL: the PostgreSQL pass leaves its tests out
if [ $whole -eq 1 ] && [ -z "${C2D_BENCH_CONFIGS:-}" ]; then
    # The key promises once more, on an administrator's own Asterisk configs
    # (tests/README.md): none may depend on a value of asterisk_conf/. On
    # PostgreSQL as the store (unless C2D_BENCH_STORE names one), so that
    # these tests are the PostgreSQL pass's too, on the other config set.
    [ -z "${C2D_BENCH_STORE:-}" ] && admin_on_pg=1
    C2D_BENCH_CONFIGS=admin C2D_BENCH_STORE=${C2D_BENCH_STORE:-postgresql} \
        .venv/bin/python -m pytest -q -p no:cacheprovider -rfE -m admin_configs tests/integration || status=1
fi
if [ $whole -eq 1 ] && [ -z "${C2D_BENCH_STORE:-}" ]; then
    # The single-node suite once more, on PostgreSQL as the store: each
    # service on a database of a PostgreSQL server started once for this run
    # (testbed/postgres.py); tests/postgresql-suite.txt says what runs
    # and which files are left out, and why. The admin_configs tests ran on
    # PostgreSQL in the admin pass just above.
    marks=()
    [ $admin_on_pg -eq 1 ] && marks=(-m "not admin_configs")
    C2D_BENCH_STORE=postgresql .venv/bin/python -m pytest -q -p no:cacheprovider -rfE "${marks[@]}" \
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
