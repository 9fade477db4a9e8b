"""Shared pytest fixtures.

Unit tests need nothing. Integration tests (``tests/integration``) get a
real Asterisk 22 (started once per session from the cached bench root), SIPp
peers, and the service as a real process. After every integration test the
bench checks that no channel and no bridge is left in Asterisk.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# C2D_SHARD / C2D_DURATIONS_OUT: one pass split into shards run side by side.
from testbed.shards import (pytest_collection_modifyitems, pytest_runtest_logreport,  # noqa: F401
                            pytest_sessionfinish)

BENCH_TMP = Path(os.environ.get("C2D_BENCH_TMP", "/tmp/c2d-bench-tests"))


@pytest.fixture(scope="session")
def bench_root():
    """The cached Debian-unstable root with Asterisk 22 and SIPp (built if missing)."""
    if os.geteuid() != 0:
        pytest.skip("the Asterisk bench needs root (chroot, mount)")
    from testbed.root import ensure_root

    return ensure_root()


@pytest.fixture(scope="session")
def asterisk(bench_root):
    """A running Asterisk 22 with asterisk_conf/ and the bench overlay."""
    from testbed.asterisk import AsteriskBench

    ast = AsteriskBench(bench_root)
    ast.start()
    yield ast
    ast.stop()


@pytest.fixture
def sipp(bench_root):
    """Factory of SIPp peers: ``sipp(name, port, scenario_xml, **kw)``; all stopped after the test."""
    from testbed.sipp import SippPeer

    peers = []

    def make(name, port, scenario, **kw):
        peer = SippPeer(bench_root, name, port, scenario, **kw)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.stop()
    shutil.rmtree(bench_root / "tmp/c2d-bench", ignore_errors=True)


@pytest.fixture
def workdir(request):
    """A fresh directory for this test's config, journal and logs."""
    path = BENCH_TMP / request.node.name.replace("/", "_")[:120]
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def make_service(request, asterisk, workdir):
    """Factory: ``make_service(overrides=None, command="serve")`` → started ServiceProcess.

    Services started with the same ``name`` share a journal (a SQLite file,
    or one PostgreSQL database with ``C2D_BENCH_STORE=postgresql``).
    """
    from testbed.service import BENCH_STORE, ServiceProcess

    started = []
    server = request.getfixturevalue("postgres_server") if BENCH_STORE == "postgresql" else None

    def make(overrides=None, command="serve", start=True, name=None):
        where = workdir / (name or f"{command}{len(started)}")
        # Keyed by the test too: two tests of one name in two files share a
        # work directory (emptied for each), and must not share a database.
        store_url = server.database_for(f"{request.node.nodeid}::{where}") if server is not None else None
        svc = ServiceProcess(where, overrides, command, store_url=store_url)
        started.append(svc)
        return svc.start() if start else svc

    yield make
    for svc in started:
        svc.stop()


@pytest.fixture
def service(make_service):
    """The service with the bench defaults (ring timeouts 4 s, tone 1 s)."""
    return make_service()


@pytest.fixture(autouse=True)
def _nothing_left_in_asterisk(request):
    """After each integration test: no channel and no bridge may remain (SPEC §3.4)."""
    if "asterisk" in request.fixturenames:
        ast = request.getfixturevalue("asterisk")
        if ast.proc is None or ast.proc.poll() is not None:
            ast.start()         # an earlier test stopped it (and failed for it, below)
    yield
    if "asterisk" not in request.fixturenames:
        return
    ast = request.getfixturevalue("asterisk")
    if ast.proc is None or ast.proc.poll() is not None:
        log_tail = ast.tail_log(15)
        ast.start()             # the next tests get a running Asterisk again
        pytest.fail(f"Asterisk stopped during the test (and was started again): {log_tail}")
    channels, bridges = ast.wait_idle(timeout=10)
    if channels or bridges:
        ast.hangup_everything()
        pytest.fail("left in Asterisk after the test: channels "
                    f"{[c['name'] for c in channels]}, bridges {[b['id'] for b in bridges]}")


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the whole session (Unix socket only), removed afterwards."""
    from testbed.postgres import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The URL of an empty store, once on SQLite and once on PostgreSQL (a database of its own)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    return request.getfixturevalue("postgres_server").new_database()
