#!/usr/bin/env bash
# Run every test: unit tests, integration tests against the real Asterisk 22
# bench with SIPp peers, and the real-browser WebRTC test.
# Unless the arguments name tests (a path), the tests marked admin_configs
# then run a second time on the administrator-style Asterisk configs
# (C2D_BENCH_CONFIGS=admin) with PostgreSQL as the store, and the rest of
# the single-node integration and browser tests on PostgreSQL
# (C2D_BENCH_STORE=postgresql; the files left out, and why, in
# tests/postgresql-suite.txt). Options alone (-q, -p ...) keep both passes.
#
# The whole suite runs as C2D_TEST_JOBS (default 4) pytest processes at once,
# each in a bench root and network namespace of its own
# (scripts/test-isolated.sh; needs root and unshare): the main pass in two
# shards, the PostgreSQL pass in two, the admin pass after the first
# PostgreSQL shard (testbed/shards.py says how files are shared out;
# docs/decisions/0023). Each process's output is printed whole once all have
# ended, with a line every five minutes meanwhile. C2D_TEST_JOBS=1, or named
# tests, or a C2D_BENCH_CONFIGS / C2D_BENCH_STORE of the caller's: one pass
# after the other in this process, as before.
#
# Installs what it needs first (scripts/setup.sh). Extra arguments go to pytest.
# Afterwards it checks that the bench left nothing behind: no process
# chrooted into a bench root and no bind mount under it.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit $?
if [ -f scripts/install-browser.sh ]; then
    bash scripts/install-browser.sh || exit $?
fi
whole=1        # no argument names a test file or directory: the whole suite ran
for arg in "$@"; do
    [ -e "${arg%%::*}" ] && whole=0
done
jobs=${C2D_TEST_JOBS:-4}
case "$jobs" in ''|*[!0-9]*|0) echo "test: C2D_TEST_JOBS=$jobs: a whole number of at least 1" >&2; exit 2;; esac
pg_args=$(grep -v '^#' tests/postgresql-suite.txt)
pass_opts=(-q -p no:cacheprovider -rfE)
roots=()       # the bench roots used, checked for leftovers at the end
status=0

if [ $whole -eq 1 ] && [ "$jobs" -gt 1 ] && [ -z "${C2D_BENCH_CONFIGS:-}" ] && [ -z "${C2D_BENCH_STORE:-}" ] \
        && [ "$(id -u)" -eq 0 ] && unshare -n true 2>/dev/null; then
    main_n=$(( (jobs + 1) / 2 )); pg_n=$(( jobs / 2 ))
    logs=$(mktemp -d /tmp/c2d-test-logs.XXXXXX)
    names=(); pids=()
    start() {  # start NAME COMMAND...: run it in the background, output to its log
        local name=$1; shift
        ( "$@" ) > "$logs/$name.log" 2>&1 &
        names+=("$name"); pids+=($!)
        roots+=("/var/cache/platforma-c2d/isolated/ci-$name")
    }
    isolated() {  # isolated NAME SHARD [env=value...] -- pytest args...
        # Each pytest process writes its seconds per test file next to the
        # logs (tests/shard-weights.json is refreshed from them by hand).
        local name=$1 shard=$2; shift 2
        local envs=("C2D_DURATIONS_OUT=$logs/durations-$name-${shard%%/*}$RANDOM.json")
        while [ "$1" != "--" ]; do envs+=("$1"); shift; done
        shift
        env C2D_SETUP_DONE=1 C2D_SHARD="$shard" "${envs[@]}" bash scripts/test-isolated.sh "ci-$name" "$@"
    }
    admin_then_pg() {  # the admin pass, then shard 1 of the PostgreSQL pass
        local rc=0
        echo "== admin pass: admin_configs tests on the administrator's configs, PostgreSQL"
        isolated "$1" "" C2D_BENCH_CONFIGS=admin C2D_BENCH_STORE=postgresql -- \
            "${pass_opts[@]}" -m admin_configs tests/integration || rc=1
        echo "== PostgreSQL pass, shard 1/$pg_n"
        # shellcheck disable=SC2086  # one pytest argument a word, as the file lists them
        isolated "$1" "1/$pg_n" C2D_BENCH_STORE=postgresql C2D_SHARD_HEAD=admin -- \
            "${pass_opts[@]}" -m "not admin_configs" $pg_args || rc=1
        return $rc
    }
    for k in $(seq 1 "$main_n"); do
        start "main-$k" isolated "main-$k" "$k/$main_n" -- "$@"
    done
    if [ "$pg_n" -ge 1 ]; then
        start "pg-1" admin_then_pg "pg-1"
        for k in $(seq 2 "$pg_n"); do
            # shellcheck disable=SC2086
            start "pg-$k" isolated "pg-$k" "$k/$pg_n" C2D_BENCH_STORE=postgresql C2D_SHARD_HEAD=admin -- \
                "${pass_opts[@]}" -m "not admin_configs" $pg_args
        done
    else
        start "pg-1" isolated "pg-1" "" C2D_BENCH_CONFIGS=admin C2D_BENCH_STORE=postgresql -- \
            "${pass_opts[@]}" -m admin_configs tests/integration
    fi
    echo "test: ${#names[@]} pytest processes at once: ${names[*]} (output in $logs)"
    waited=0
    while :; do
        running=()
        for i in "${!pids[@]}"; do
            kill -0 "${pids[$i]}" 2>/dev/null && running+=("${names[$i]}")
        done
        [ ${#running[@]} -eq 0 ] && break
        sleep 10; waited=$((waited + 10))
        [ $((waited % 300)) -eq 0 ] && echo "test: $((waited / 60)) min, still running: ${running[*]}"
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}"; rc=$?
        echo; echo "======== ${names[$i]} (exit $rc) ========"
        cat "$logs/${names[$i]}.log"
        [ $rc -ne 0 ] && status=1
    done
else
    .venv/bin/python -m pytest "$@" || status=1
    admin_on_pg=0  # the admin pass ran on PostgreSQL: the PostgreSQL pass leaves its tests out
    if [ $whole -eq 1 ] && [ -z "${C2D_BENCH_CONFIGS:-}" ]; then
        # The key promises once more, on an administrator's own Asterisk configs
        # (tests/README.md): none may depend on a value of asterisk_conf/. On
        # PostgreSQL as the store (unless C2D_BENCH_STORE names one), so that
        # these tests are the PostgreSQL pass's too, on the other config set.
        [ -z "${C2D_BENCH_STORE:-}" ] && admin_on_pg=1
        C2D_BENCH_CONFIGS=admin C2D_BENCH_STORE=${C2D_BENCH_STORE:-postgresql} \
            .venv/bin/python -m pytest "${pass_opts[@]}" -m admin_configs tests/integration || status=1
    fi
    if [ $whole -eq 1 ] && [ -z "${C2D_BENCH_STORE:-}" ]; then
        # The single-node suite once more, on PostgreSQL as the store: each
        # service on a database of a PostgreSQL server started once for this run
        # (testbed/postgres.py); tests/postgresql-suite.txt says what runs
        # and which files are left out, and why. The admin_configs tests ran on
        # PostgreSQL in the admin pass just above.
        marks=()
        [ $admin_on_pg -eq 1 ] && marks=(-m "not admin_configs")
        # shellcheck disable=SC2086
        C2D_BENCH_STORE=postgresql .venv/bin/python -m pytest "${pass_opts[@]}" "${marks[@]}" $pg_args || status=1
    fi
fi
C2D_CHECK_ROOTS="${roots[*]}" .venv/bin/python - <<'PY' || status=1
import os
import sys
from pathlib import Path
from testbed.asterisk import _mounts_under, processes_in
from testbed.root import root_path
left = []
for root in [root_path(), *map(Path, os.environ["C2D_CHECK_ROOTS"].split())]:
    if root.exists():
        procs, mounts = processes_in(root), _mounts_under(root)
        if procs or mounts:
            left.append(f"{root}: processes {procs}, mounts {mounts}")
if left:
    print("bench left behind: " + "; ".join(left), file=sys.stderr)
    sys.exit(1)
print("bench: no process and no mount left behind")
PY
exit $status
