#!/usr/bin/env bash
# Install everything platforma_c2d needs on a Debian 12 machine, as root.
# Idempotent: a second run only checks. Used by demo.sh and test.sh.
#   - Debian packages: python3 (+venv), debootstrap, iproute2, postgresql (tests)
#   - a virtualenv in .venv with the package and its test extras
#   - the Asterisk 22 bench root (Debian unstable, cached under
#     /var/cache/platforma-c2d; rebuilt when missing or broken)
#   - unixodbc and odbc-postgresql in that root, for the cdr_adaptive_odbc
#     tests (an additive step with its own marker, testbed/odbc.py)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "setup: run as root (the bench uses debootstrap, chroot and mount)" >&2
    exit 2
fi

missing=()
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv python3-pip)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v ip >/dev/null || missing+=(iproute2)
# a real PostgreSQL server for the tests of the store on PostgreSQL (testbed/postgres.py)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.c2d-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
        || [ constraints.txt -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    # The pinned versions (constraints.txt) the package is built with too.
    .venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
    touch "$stamp"
fi

.venv/bin/python -c 'from testbed.root import ensure_root; print("setup: Asterisk bench root", ensure_root())'
.venv/bin/python -m testbed.odbc
