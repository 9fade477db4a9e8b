"""Commands between instances do not depend on their clocks agreeing (SPEC §11).

A command's age decides whether the node's active instance still runs it
(``[cluster] command_timeout_s``). Measured with each instance's own clock,
a sender whose clock is a minute behind the owner's (a VM without NTP)
had every command taken for stale by the owner: every call placed through
another instance was a 503, though both were healthy. Against a real
PostgreSQL server, whose clock both read.
"""

from __future__ import annotations

import threading
import time

from platforma_c2d.cluster import commands
from platforma_c2d.cluster.commands import CommandBus, CommandWorker
from testbed.service import wait_for
from tests.unit.test_cluster_postgresql import Instance, handler, store  # noqa: F401 - the fixture


class _SenderBehind:
    """``time`` as the two instances of this test see it: the sending instance (the
    test's main thread) has a wall clock 60 s behind the owner's (every other thread)."""

    monotonic, sleep = staticmethod(time.monotonic), staticmethod(time.sleep)

    @staticmethod
    def time() -> float:
        behind = 60.0 if threading.current_thread() is threading.main_thread() else 0.0
        return time.time() - behind


def test_a_command_from_an_instance_whose_clock_is_behind_is_run(store, monkeypatch):
    url, engine = store
    monkeypatch.setattr(commands, "time", _SenderBehind)
    owner = Instance(url, "a", "a1")
    assert wait_for(lambda: owner.lease.role == "active")
    worker = CommandWorker(url, engine, "a", "a1", handler, timeout_s=5.0)
    worker.start()
    try:
        answer = CommandBus(engine, 5.0).send("a", "place", {"agent": "1001"})
        assert answer["echo"] == {"agent": "1001"}
    finally:
        worker.stop()
        owner.lease.stop()
