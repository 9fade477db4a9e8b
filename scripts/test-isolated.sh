#!/usr/bin/env bash
# Run tests in a private copy of the Asterisk bench root and a network
# namespace of their own, so that two checkouts (or two developers on one
# machine) can run integration tests at the same time: every bench server
# binds 127.0.0.1 with fixed ports, and each namespace has its own loopback.
#
#   bash scripts/test-isolated.sh NAME [pytest arguments...]
#
# NAME picks the private root (/var/cache/platforma-c2d/isolated/NAME, copied
# from the shared bench root once, about 600 MB) and the temporary directory.
# Installs what it needs first, like scripts/test.sh. As root.
set -uo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: test-isolated.sh NAME [pytest args...]}
shift
case "$name" in *[!A-Za-z0-9_-]*) echo "test-isolated: NAME: letters, digits, - and _ only" >&2; exit 2;; esac

# C2D_SETUP_DONE=1: scripts/test.sh installed everything already (it starts
# several of these at once, and they must not rebuild the venv together).
if [ -z "${C2D_SETUP_DONE:-}" ]; then
    bash scripts/setup.sh || exit $?
    if [ -f scripts/install-browser.sh ]; then
        bash scripts/install-browser.sh || exit $?
    fi
fi
shared=$(.venv/bin/python -c 'from testbed.root import root_path; print(root_path())')
base=/var/cache/platforma-c2d/isolated
root=$base/$name
if ! C2D_BENCH_ROOT=$root .venv/bin/python -c 'import sys; from testbed.root import root_is_valid, root_path; sys.exit(0 if root_is_valid(root_path()) else 1)'; then
    echo "test-isolated: copying the bench root to $root"
    rm -rf "$root" && mkdir -p "$root"
    tar -C "$shared" --exclude=./proc/* --exclude=./dev/* --exclude=./tmp/* -cf - . | tar -xf - -C "$root" || exit 1
fi
# A copy made before the ODBC packages were added to the bench root gets them
# here, while the network is still there (testbed/odbc.py).
C2D_BENCH_ROOT=$root .venv/bin/python -m testbed.odbc || exit 1
export C2D_BENCH_ROOT=$root C2D_BENCH_TMP=/tmp/c2d-bench-$name
exec unshare -n sh -c 'ip link set lo up && exec "$0" -m pytest "$@"' .venv/bin/python "$@"
