"""One active instance per node and commands between instances, against a real
PostgreSQL server (SPEC §11): the advisory lock, its loss, and the command table."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from platforma_c2d.calls.errors import AgentBusy, AsteriskUnavailable
from platforma_c2d.cluster.commands import CommandBus, CommandWorker, commands
from platforma_c2d.cluster.lease import NodeLease, node_is_active
from platforma_c2d.store.journal import Journal
from testbed.service import wait_for


@pytest.fixture
def store(postgres_server):
    """An empty, migrated store on the session's PostgreSQL: (url, engine)."""
    url = postgres_server.new_database("cluster")
    journal = Journal(url)
    yield url, journal.engine
    journal.close()


class Instance:
    """A lease as an instance runs it, recording its callbacks."""

    def __init__(self, url, node, name, delivery=False):
        self.events: list[str] = []
        self.lease = NodeLease(url, node, name, 0.1, on_active=lambda: self.events.append("active"),
                               on_lost=lambda why: self.events.append("lost"),
                               on_delivery=(lambda: self.events.append("delivery")) if delivery else None)
        self.lease.start()


def test_one_instance_of_a_node_is_active_and_a_standby_takes_over_when_it_goes(store):
    url, engine = store
    a1 = Instance(url, "a", "a1")
    assert wait_for(lambda: a1.lease.role == "active")
    a2, b1 = Instance(url, "a", "a2"), Instance(url, "b", "b1")
    assert wait_for(lambda: b1.lease.role == "active")      # another node: its own lock
    time.sleep(0.4)
    assert a2.lease.role == "standby" and a2.events == []
    assert node_is_active(engine, "a") and node_is_active(engine, "b") and not node_is_active(engine, "c")
    a1.lease.stop()                                           # its session ends: the lock goes with it
    assert wait_for(lambda: a2.lease.role == "active", 2.0)
    assert a2.events == ["active"] and a1.events == ["active"]
    assert node_is_active(engine, "a")
    a2.lease.stop()
    b1.lease.stop()
    assert wait_for(lambda: not node_is_active(engine, "a"))


def test_the_active_instance_that_loses_the_store_says_so_at_once(store):
    url, engine = store
    a1 = Instance(url, "a", "a1")
    assert wait_for(lambda: a1.lease.role == "active")
    a2 = Instance(url, "a", "a2")
    time.sleep(0.3)
    with engine.connect() as conn:      # the store drops a1's session (a restart, a cut network)
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE application_name = 'platforma-c2d a1'"))
    assert wait_for(lambda: a1.events == ["active", "lost"], 2.0)
    assert a1.lease.role == "lost"
    assert wait_for(lambda: a2.lease.role == "active", 2.0)
    a1.lease.stop()
    a2.lease.stop()


def test_one_instance_of_the_cluster_delivers_the_webhooks(store):
    url, _ = store
    one, two = Instance(url, "a", "a1", delivery=True), Instance(url, "b", "b1", delivery=True)
    assert wait_for(lambda: "delivery" in one.events + two.events)
    time.sleep(0.4)
    assert (one.events + two.events).count("delivery") == 1
    holder, other = (one, two) if "delivery" in one.events else (two, one)
    holder.lease.stop()
    assert wait_for(lambda: "delivery" in other.events, 2.0)
    other.lease.stop()


def handler(kind, payload):
    if payload.get("busy"):
        raise AgentBusy("the agent already has an active call", {"agent": payload["agent"], "max_active_calls": 1})
    return {"kind": kind, "echo": payload, "thread": threading.current_thread().name}


def test_a_command_reaches_the_active_instance_of_its_node_and_its_answer_comes_back(store):
    url, engine = store
    a1 = Instance(url, "a", "a1")
    assert wait_for(lambda: a1.lease.role == "active")
    # Its poll (10 s) comes after the bus's timeout (5 s): only NOTIFY can wake it in time.
    worker = CommandWorker(url, engine, "a", "a1", handler, timeout_s=5, poll_s=10.0)
    worker.start()
    try:
        bus = CommandBus(engine, 5.0)
        answer = bus.send("a", "place", {"agent": "1001"})
        assert answer["kind"] == "place" and answer["echo"] == {"agent": "1001"}
        assert answer["thread"].startswith("cluster-command")
        with pytest.raises(AgentBusy) as err:
            bus.send("a", "place", {"agent": "1001", "busy": True})
        assert err.value.status == 409 and err.value.details == {"agent": "1001", "max_active_calls": 1}
        with engine.connect() as conn:
            rows = conn.execute(sa.select(commands.c.state, commands.c.taken_by)).all()
        assert rows == [("done", "a1"), ("done", "a1")]
    finally:
        worker.stop()
        a1.lease.stop()


def test_a_node_without_an_active_instance_is_503_and_nothing_is_queued(store):
    url, engine = store
    with pytest.raises(AsteriskUnavailable) as err:
        CommandBus(engine, 5.0).send("a", "place", {"agent": "1001"})
    assert err.value.status == 503 and err.value.details == {"node": "a"}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(commands)).scalar() == 0


def test_a_node_that_does_not_answer_in_time_is_503_and_the_command_is_never_run(store):
    url, engine = store
    a1 = Instance(url, "a", "a1")         # active, but takes no commands (stuck)
    assert wait_for(lambda: a1.lease.role == "active")
    ran = []
    started = time.monotonic()
    with pytest.raises(AsteriskUnavailable) as err:
        CommandBus(engine, 0.5).send("a", "place", {"agent": "1001"})
    assert time.monotonic() - started >= 0.5 and "did not answer in time" in err.value.message
    worker = CommandWorker(url, engine, "a", "a1", lambda kind, p: ran.append(p) or {}, timeout_s=0.5)
    worker.start()
    try:
        time.sleep(0.5)
        assert ran == []
        with engine.connect() as conn:
            assert conn.execute(sa.select(commands.c.state)).scalars().all() == ["expired"]
    finally:
        worker.stop()
        a1.lease.stop()


def test_an_agent_is_found_on_the_active_node_where_its_endpoint_is_online(store):
    from platforma_c2d.cluster.registrations import EndpointPublisher, online_endpoints, registered_node

    url, engine = store
    listing = [{"resource": "1001", "state": "online"}, {"resource": "1009", "state": "offline"},
               {"resource": "trunk", "state": "online"}, {"resource": "2101", "state": "unknown"}]
    assert online_endpoints(listing) == {"1001", "trunk"}
    a, b = (EndpointPublisher(None, None, engine, node) for node in ("a", "b"))
    assert a.publish({"1001", "1003"}) and b.publish({"1002", "1003"})
    assert not a.publish({"1001", "1003"})          # unchanged: nothing written
    assert registered_node(engine, "1001") is None  # node a has no active instance
    a1, b1 = Instance(url, "a", "a1"), Instance(url, "b", "b1")
    assert wait_for(lambda: a1.lease.role == b1.lease.role == "active")
    assert [registered_node(engine, e) for e in ("1001", "1002", "1003", "1004")] == ["a", "b", "a", None]
    assert a.publish({"1003"})                       # 1001 went offline on a
    assert registered_node(engine, "1001") is None
    a1.lease.stop()
    assert wait_for(lambda: not node_is_active(engine, "a"))
    assert registered_node(engine, "1003") == "b"   # a's rows count no more
    b1.lease.stop()


def test_check_says_whether_the_node_has_an_active_instance(store):
    from platforma_c2d.cluster.report import cluster_report
    from platforma_c2d.config import loads_config

    url, _ = store

    def cluster(rules):
        return loads_config(f'[store]\nurl = "{url}"\n[cluster]\nnode = "a"\nrules = {rules}\n').cluster

    assert cluster_report(cluster('["1*=a"]'), url) == [
        ("ok", "cluster: node a has no active instance: this one starts active")]
    a1 = Instance(url, "a", "a1")
    assert wait_for(lambda: a1.lease.role == "active")
    assert cluster_report(cluster('["1*=b"]'), url) == [
        ("ok", "cluster: node a has an active instance: this one starts as a standby"),
        ("WARN", "cluster.rules: no rule names node a: no REST call is placed through its Asterisk")]
    a1.lease.stop()
    assert cluster_report(loads_config("").cluster, "sqlite://") == []


def test_a_command_taken_before_the_timeout_is_answered_not_503(store):
    url, engine = store
    a1 = Instance(url, "a", "a1")
    assert wait_for(lambda: a1.lease.role == "active")

    def slow(kind, payload):
        time.sleep(1.0)            # the owner is placing the call (ARI requests) past the timeout
        return {"placed": payload}

    worker = CommandWorker(url, engine, "a", "a1", slow, timeout_s=0.5)
    worker.start()
    try:
        assert CommandBus(engine, 0.5, grace_s=5.0).send("a", "place", {"agent": "1001"}) == \
            {"placed": {"agent": "1001"}}
        with pytest.raises(AsteriskUnavailable):       # the owner's own bound passed too: 503
            CommandBus(engine, 0.5, grace_s=0.2).send("a", "place", {"agent": "1002"})
    finally:
        worker.stop()
        a1.lease.stop()
