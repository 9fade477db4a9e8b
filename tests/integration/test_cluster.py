"""Two Asterisk nodes, their service instances and one PostgreSQL store (SPEC §11).

Node A is an Asterisk on 127.0.0.2, node B one on 127.0.0.3, in the same
bench root with directories of their own; each node's SIPp peers (its
agents' phones, its trunk) bind the node's address. Every instance shares
one database of the session's PostgreSQL server, whatever
``C2D_BENCH_STORE`` says: a cluster needs PostgreSQL. ``[cluster] rules``
give agents 1001 and 1003 to node A, 1002 and 1004 to node B.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import psycopg

from testbed.asterisk import AsteriskBench
from testbed.receiver import WebhookReceiver
from testbed.service import AGI_SECRET, ServiceProcess, free_port, wait_for
from testbed.sipmessages import sip_user
from testbed.sipp import uac_scenario, uas_scenario

ADDRESS = {"a": "127.0.0.2", "b": "127.0.0.3"}
RULES = ["1001=a", "1003=a", "1002=b", "1004=b"]
AGENT_PORT = {"1001": 5071, "1002": 5072}
TRUNK_PORT, PHONE_PORT = 5070, 5081


@pytest.fixture(scope="module")
def nodes(bench_root):
    """The Asterisk of node A and of node B, started once for the module."""
    started = {}
    try:
        for name, address in ADDRESS.items():
            started[name] = AsteriskBench(bench_root, configs="ours", name=name, address=address)
            started[name].start()
        yield started
    finally:
        for ast in started.values():
            ast.stop()


@pytest.fixture(autouse=True)
def _nothing_left_in_either_asterisk(nodes):
    """After each test: no channel and no bridge in either node."""
    yield
    for name, ast in nodes.items():
        channels, bridges = ast.wait_idle(timeout=10)
        if channels or bridges:
            ast.hangup_everything()
            pytest.fail(f"left in node {name}: channels {[c['name'] for c in channels]}, "
                        f"bridges {[b['id'] for b in bridges]}")


@pytest.fixture
def cluster(nodes, postgres_server, workdir):
    """Factory: ``cluster(node, instance)`` → a started ServiceProcess of that node, all
    on one store; every instance is stopped after the test."""
    store_url = postgres_server.new_database("cluster")
    started = []

    def make(node: str, instance: str, wait_role: str | None = None, more: dict | None = None,
             command: str = "serve") -> ServiceProcess:
        overrides = {"ari": {"url": nodes[node].ari_url},
                     "cluster": {"node": node, "instance": instance, "rules": RULES, "lease_check_s": 0.5,
                                 "command_timeout_s": 5.0}}
        for section, values in (more or {}).items():
            overrides.setdefault(section, {}).update(values)
        svc = ServiceProcess(workdir / instance, overrides, command, store_url=store_url)
        started.append(svc)
        svc.start()
        if wait_role:
            assert wait_for(lambda: role(svc) == wait_role, 15), svc.tail_log()
        return svc

    make.store_url = store_url
    yield make
    for svc in started:
        svc.stop()


def node_of(store_url: str, call_id: str) -> str | None:
    """The node the journal holds for a call."""
    with psycopg.connect(store_url.replace("postgresql+psycopg", "postgresql")) as conn:
        return conn.execute("SELECT node FROM calls WHERE id = %s", (call_id,)).fetchone()[0]


def role(svc: ServiceProcess) -> str | None:
    """The instance's role as its /healthz says, or None when it does not answer."""
    try:
        return svc.http.get("/healthz", timeout=2).json()["cluster"]["role"]
    except Exception:  # noqa: BLE001 - down, or starting
        return None


def call_body(agent: str, ref: str) -> dict:
    return {"agent": agent, "callee": "0215550100", "outbound_id": "0215550199", "call_ref": ref}


def legs_of(call_id: str, agent: str) -> list[str]:
    """The channels of a connected REST call: its two legs, their dialplan
    halves and the phone and trunk channels those halves dialled (ADR 0014)."""
    return sorted([f"c2d-{call_id}-agent", f"c2d-{call_id}-agent-dial", f"PJSIP/{agent}",
                   f"c2d-{call_id}-callee", f"c2d-{call_id}-callee-dial", "PJSIP/trunk"])


def call_channels(node) -> list[str]:
    """The channels in ``node``'s Asterisk: our ids, others by endpoint."""
    return sorted(c["id"] if c["id"].startswith("c2d-") else c["name"].rsplit("-", 1)[0]
                  for c in node.channels())


def test_a_call_placed_on_node_a_for_an_agent_of_node_b_is_dialled_by_node_b(nodes, cluster, sipp):
    a1 = cluster("a", "a1", wait_role="active")
    b1 = cluster("b", "b1", wait_role="active")
    agent = sipp("agent-b", AGENT_PORT["1002"], uas_scenario(ring_ms=200), host=ADDRESS["b"])
    trunk = sipp("trunk-b", TRUNK_PORT, uas_scenario(ring_ms=200), host=ADDRESS["b"])
    r = a1.post_call(call_body("1002", "cl-1"), headers={"Idempotency-Key": "cluster-key-1"})
    assert r.status_code == 201, r.text + a1.tail_log()
    call = r.json()
    assert r.headers["Location"] == f"/click2dial/calls/{call['id']}"
    assert call["agent"] == "1002" and call["state"] == "dialing_agent" and call["call_ref"] == "cl-1"
    # Connected through node B's Asterisk: its agent phone and its trunk got the INVITEs.
    assert b1.wait_state(call["id"], "connected")["state"] == "connected"
    assert sip_user(agent.received("INVITE")[0].header("From")[0]) == "0215550100"
    invite = trunk.received("INVITE")[0]
    assert invite.first_line.startswith("INVITE sip:0215550100@")
    assert sip_user(invite.header("From")[0]) == "0215550199"
    assert call_channels(nodes["b"]) == legs_of(call["id"], "1002")
    assert nodes["a"].channels() == []

    # Read and listed from either instance; the agent is busy for the whole cluster.
    for svc in (a1, b1):
        assert svc.get_call(call["id"])["state"] == "connected"
        listed = svc.http.get("/click2dial/calls", params={"agent": "1002"}).json()
        assert [c["id"] for c in listed["calls"]] == [call["id"]]
    busy = a1.post_call(call_body("1002", "cl-2"))
    assert busy.status_code == 409 and busy.json()["error"] == "agent-busy", busy.text
    # The same Idempotency-Key through the other node's instance: the first call, nothing dialled.
    again = b1.post_call(call_body("1002", "cl-1"), headers={"Idempotency-Key": "cluster-key-1"})
    assert again.status_code == 201 and again.json()["id"] == call["id"], again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    again = a1.post_call(call_body("1002", "cl-1"), headers={"Idempotency-Key": "cluster-key-1"})
    assert again.status_code == 201 and again.json()["id"] == call["id"], again.text

    # Cancelled through node A's instance: node B hangs it up.
    r = a1.http.delete(f"/click2dial/calls/{call['id']}")
    assert r.status_code == 200, r.text
    ended = r.json()
    assert ended["state"] == "ended" and ended["reason"] == "completed" and ended["ended_by"] == "api"
    assert len(trunk.received("INVITE")) == 1 and len(agent.received("INVITE")) == 1
    history = b1.http.get(f"/click2dial/calls/{call['id']}/history").json()
    assert [h["state"] for h in history["states"]] == ["dialing_agent", "dialing_callee", "connected", "ended"]


def post_at_once(posts: list) -> list:
    """Send ``(instance, body, key)`` POSTs at the same moment, one thread each; their responses."""
    barrier = threading.Barrier(len(posts))

    def send(svc, body, key):
        barrier.wait()
        return svc.post_call(body, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(len(posts)) as pool:
        return list(pool.map(lambda p: send(*p), posts))


def test_one_idempotency_key_sent_at_once_through_both_nodes_places_one_call(nodes, cluster, sipp):
    a1 = cluster("a", "a1", wait_role="active")
    b1 = cluster("b", "b1", wait_role="active")
    phones = [sipp("agent-a", AGENT_PORT["1001"], uas_scenario(answer=False), host=ADDRESS["a"]),
              sipp("agent-b", AGENT_PORT["1002"], uas_scenario(answer=False), host=ADDRESS["b"])]
    # Two bodies (agents of two nodes), one key: one call, the other request 422.
    answers = post_at_once([(a1, call_body("1001", "race-1"), "race-key"),
                            (b1, call_body("1002", "race-1"), "race-key")])
    assert sorted(r.status_code for r in answers) == [201, 422], [r.text for r in answers]
    placed = next(r.json() for r in answers if r.status_code == 201)
    refused = next(r.json() for r in answers if r.status_code == 422)
    assert refused["error"] == "idempotency-key-reused"
    # One body, one key, through both instances at once: one call, the other answer its replay
    # (for the agent whose phone is still free).
    free = "1002" if placed["agent"] == "1001" else "1001"
    again = post_at_once([(a1, call_body(free, "race-2"), "race-key-2"),
                          (b1, call_body(free, "race-2"), "race-key-2")])
    assert [r.status_code for r in again] == [201, 201], [r.text for r in again]
    assert again[0].json()["id"] == again[1].json()["id"]
    assert sorted(r.headers.get("Idempotent-Replayed", "") for r in again) == ["", "true"]
    ids = {placed["id"], again[0].json()["id"]}
    listed = a1.http.get("/click2dial/calls", params={"call_ref": "race-1"}).json()["calls"]
    listed += a1.http.get("/click2dial/calls", params={"call_ref": "race-2"}).json()["calls"]
    assert {c["id"] for c in listed} == ids
    for call_id in ids:
        assert a1.http.delete(f"/click2dial/calls/{call_id}").status_code == 200
    for call_id in ids:
        assert b1.wait_state(call_id, "ended")["state"] == "ended"
    # What the phones saw: one INVITE for each call placed, none for the refused or replayed.
    assert [len(p.received("INVITE")) for p in phones] == [1, 1]


def test_a_browser_call_on_node_a_is_seen_from_node_b(nodes, cluster, sipp):
    a1 = cluster("a", "a1", wait_role="active")
    b1 = cluster("b", "b1", wait_role="active")
    sipp("trunk-a", TRUNK_PORT, uas_scenario(ring_ms=200), host=ADDRESS["a"])
    phone = sipp("phone-a", PHONE_PORT, uac_scenario(target="0215550100", from_user="2001", talk_ms=2500,
                                                     headers=["X-Platforma-Call-Ref: web-1"]),
                 uac_target=f"{ADDRESS['a']}:5060", calls=1, host=ADDRESS["a"])

    def seen_connected():
        calls = b1.http.get("/click2dial/calls", params={"origin": "webrtc"}).json()["calls"]
        return calls and calls[0]["state"] == "connected"

    assert wait_for(seen_connected, 10), a1.tail_log()
    call = b1.http.get("/click2dial/calls", params={"origin": "webrtc"}).json()["calls"][0]
    assert call["agent"] == "2001" and call["call_ref"] == "web-1"
    assert node_of(cluster.store_url, call["id"]) == "a"
    assert phone.wait(timeout=20) == 0
    assert b1.wait_state(call["id"], "ended")["reason"] == "completed"


def test_the_standby_takes_over_a_connected_call_when_the_active_instance_is_killed(nodes, cluster, sipp):
    receiver = WebhookReceiver(free_port()).start()
    hooks = {"webhooks": {"endpoints": [{"name": "crm", "url": receiver.url, "secret": "s3cret-of-the-crm"}]}}
    try:
        run_takeover(nodes, cluster, sipp, hooks, receiver)
    finally:
        receiver.stop()


def run_takeover(nodes, cluster, sipp, hooks, receiver):
    a1 = cluster("a", "a1", wait_role="active", more=hooks)
    a2 = cluster("a", "a2", wait_role="standby", more=hooks)
    b1 = cluster("b", "b1", wait_role="active", more=hooks)
    b2 = cluster("b", "b2", wait_role="standby", more=hooks)
    metrics = a2.http.get("/metrics").text
    assert 'c2d_cluster_active{instance="a2",node="a"} 0.0' in metrics
    sipp("agent-a", AGENT_PORT["1001"], uas_scenario(ring_ms=200), host=ADDRESS["a"])
    trunk = sipp("trunk-a", TRUNK_PORT, uas_scenario(ring_ms=200), host=ADDRESS["a"])
    r = b1.post_call(call_body("1001", "cl-3"))       # placed through node B for an agent of A
    assert r.status_code == 201, r.text
    call = r.json()
    assert a1.wait_state(call["id"], "connected")["state"] == "connected"
    assert a2.get_call(call["id"])["state"] == b2.get_call(call["id"])["state"] == "connected"

    a1.kill()                                          # SIGKILL: no clean-up at all
    # Within seconds: the lock is free once a1's session is gone; a2 becomes active,
    # then connects to ARI (its /healthz is `degraded` in between: it does not
    # serve the node's calls yet) and reconciles the node's calls.
    assert wait_for(lambda: role(a2) == "active", 10), a2.tail_log()
    assert wait_for(lambda: a2.http.get("/healthz").json()["status"] == "ok", 10), a2.tail_log()
    health = a2.http.get("/healthz").json()
    assert health["ari_connected"] and health["cluster"]["instance"] == "a2"
    assert 'c2d_cluster_active{instance="a2",node="a"} 1.0' in a2.http.get("/metrics").text
    # Adopted, still connected: both legs are still up in node A's Asterisk.
    time.sleep(1.0)
    assert b1.get_call(call["id"])["state"] == "connected"
    assert call_channels(nodes["a"]) == legs_of(call["id"], "1001")

    r = b2.http.delete(f"/click2dial/calls/{call['id']}")  # through node B's standby: reaches a2
    assert r.status_code == 200, r.text + a2.tail_log()
    ended = r.json()
    assert ended["reason"] == "completed" and ended["ended_by"] == "api", ended
    assert len(trunk.received("INVITE")) == 1        # the callee was never dialled again
    history = a2.http.get(f"/click2dial/calls/{call['id']}/history").json()
    assert [h["state"] for h in history["states"]] == ["dialing_agent", "dialing_callee", "connected", "ended"]
    # The events: each state once in the store, no gap; delivered by one instance for the
    # cluster. A delivery in flight when a1 died may come again, with its event id
    # (at least once, docs/events.md): never another event for the same state.
    stored = b2.http.get("/click2dial/events", params={"call_id": call["id"]},
                         headers={"Accept": "application/json"}).json()["events"]
    assert [ev["type"] for ev in stored] == ["call.dialing_agent", "call.dialing_callee", "call.connected",
                                             "call.ended"], stored
    receiver.wait(lambda evs: any(ev["type"] == "call.ended" for _h, _b, ev in evs))
    time.sleep(1.0)
    got = [ev for _h, _b, ev in receiver.events()]
    first_copies = {ev["id"]: ev for ev in reversed(got)}
    assert sorted(first_copies) == [ev["id"] for ev in stored]
    assert all(ev == first_copies[ev["id"]] for ev in got)           # a repeat is the same event
    assert len(got) - len(stored) <= 1, got                           # at most the one in flight


def test_an_active_instance_that_loses_the_store_exits_and_its_standby_takes_over(cluster):
    a1 = cluster("a", "a1", wait_role="active")
    a2 = cluster("a", "a2", wait_role="standby")
    with psycopg.connect(cluster.store_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        killed = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                              " WHERE application_name = 'platforma-c2d a1'").fetchall()
    assert killed == [(True,)]      # its lease's session, as a restart of PostgreSQL would end it
    assert a1.proc.wait(timeout=5) == 75      # at once: not after a lease period
    assert "lost the store" in a1.tail_log()
    assert wait_for(lambda: role(a2) == "active", 5), a2.tail_log()


def test_a_fastagi_call_on_node_b_is_journalled_with_its_node_and_cancelled_through_node_a(nodes, cluster, sipp):
    a1 = cluster("a", "a1", wait_role="active")
    cluster("b", "b1", wait_role="active")
    agi = cluster("b", "agi-b", command="agi", more={
        "agi": {"listen": f"{ADDRESS['b']}:4573", "secret": AGI_SECRET}})
    assert wait_for(lambda: "FastAGI listening" in agi.log_path.read_text(errors="replace"), 30), agi.tail_log()
    trunk = sipp("trunk-b", TRUNK_PORT, uas_scenario(talk_ms=30000), host=ADDRESS["b"])
    phone = sipp("agi-phone-b", 5091, uac_scenario(target="0215550100", from_user="3001", talk_ms=30000,
                                                   headers=["X-Platforma-Call-Ref: agi-b"]),
                 uac_target=f"{ADDRESS['b']}:5060", calls=1, host=ADDRESS["b"])
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "ACK"), agi.tail_log()

    def listed():
        calls = a1.http.get("/click2dial/calls", params={"origin": "agi"}).json()["calls"]
        return calls[0] if calls else None

    assert wait_for(listed, 10)
    call = listed()
    assert call["call_ref"] == "agi-b" and node_of(cluster.store_url, call["id"]) == "b"
    r = a1.http.delete(f"/click2dial/calls/{call['id']}")   # node A's instance: node B hangs it up
    assert r.status_code == 200, r.text
    assert r.json()["ended_by"] == "api" and r.json()["reason"] == "completed", r.text
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "BYE")
    assert phone.wait_for(lambda m: m.direction == "received" and m.method == "BYE")
    assert nodes["a"].channels() == []


def register_scenario(user: str, expires: int = 60) -> str:
    """A SIPp UAC that REGISTERs ``user`` with its own address as the contact, once."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="c2d-register">
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{user}@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>
Expires: {expires}
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""


def test_with_agents_by_registration_a_call_goes_to_the_node_where_the_agent_registered(nodes, cluster, sipp):
    more = {"cluster": {"agents_by": "registration"}}
    a1 = cluster("a", "a1", wait_role="active", more=more)
    b1 = cluster("b", "b1", wait_role="active", more=more)
    # 1009 has no contact on either node until its phone registers on node B.
    unknown = a1.post_call(call_body("1009", "reg-0"))
    assert unknown.status_code == 400 and "agent" in unknown.json()["details"]["fields"], unknown.text
    register = sipp("register-b", 5079, register_scenario("1009"), uac_target=f"{ADDRESS['b']}:5060",
                    calls=1, host=ADDRESS["b"])
    assert register.wait(timeout=10) == 0
    phone = sipp("agent-1009", 5079, uas_scenario(ring_ms=200), host=ADDRESS["b"])
    trunk = sipp("trunk-b", TRUNK_PORT, uas_scenario(ring_ms=200), host=ADDRESS["b"])

    def placed():
        r = a1.post_call(call_body("1009", "reg-1"))
        return r if r.status_code == 201 else None

    assert wait_for(placed, 10), a1.tail_log()      # once node B has published it (every 2 s)
    call = a1.http.get("/click2dial/calls", params={"agent": "1009"}).json()["calls"][0]
    assert b1.wait_state(call["id"], "connected")["state"] == "connected"
    assert phone.received("INVITE") and trunk.received("INVITE")
    assert nodes["a"].channels() == []
    r = a1.http.delete(f"/click2dial/calls/{call['id']}")
    assert r.status_code == 200 and r.json()["ended_by"] == "api", r.text


def test_stopping_the_active_instance_hands_its_node_over_at_once(cluster):
    a1 = cluster("a", "a1", wait_role="active")
    a2 = cluster("a", "a2", wait_role="standby")
    a1.stop()                                        # SIGTERM: an upgrade, a planned move
    assert a1.proc.returncode == 0
    assert wait_for(lambda: role(a2) == "active", 3), a2.tail_log()


def test_a_node_without_an_active_instance_is_503_from_any_instance(nodes, cluster):
    b1 = cluster("b", "b1", wait_role="active")
    r = b1.post_call(call_body("1001", "cl-4"), timeout=4)   # node A has no instance at all:
    assert r.status_code == 503, r.text       # refused at once, not after the command timeout (5 s)
    assert r.json()["error"] == "asterisk-unavailable" and r.json()["details"] == {"node": "a"}
    unknown = b1.post_call(call_body("2001", "cl-5"))   # no rule names a node for this agent
    assert unknown.status_code == 400 and "agent" in unknown.json()["details"]["fields"], unknown.text
    listed = b1.http.get("/click2dial/calls").json()
    assert listed["calls"] == []
