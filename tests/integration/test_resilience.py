"""Stays up, loses nothing (SPEC §9, field reports C07–C09): faults in the
middle of real calls, then the journal, Asterisk and a new call are checked."""

from __future__ import annotations

import re
import time

import pytest

from testbed.proxy import TcpProxy
from testbed.service import free_port
from testbed.sipp import uac_scenario, uas_scenario

AGENT_PORT, TRUNK_PORT = 5071, 5070
#: How long a phone rings through a kill and restart of the service before
#: answering: longer than a restart takes on a loaded machine (8-11 s seen).
RING_THROUGH_RESTART_MS = 20000
BODY = {"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199", "call_ref": "fault-1"}


def metric(svc, name: str, labels: str = "") -> float:
    text = svc.http.get("/metrics").text
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" ([0-9.e+-]+)"
    found = re.search("^" + pattern + "$", text, re.M)
    return float(found.group(1)) if found else 0.0


def new_call_works(asterisk, svc, sipp, *old_peers) -> None:
    for peer in old_peers:
        peer.stop()
    sipp("agent-new", AGENT_PORT, uas_scenario())
    sipp("trunk-new", TRUNK_PORT, uas_scenario(talk_ms=500))
    r = svc.post_call({**BODY, "call_ref": "after-fault"})
    assert r.status_code == 201, r.text
    assert svc.wait_state(r.json()["id"], "ended", timeout=20)["reason"] == "completed"


@pytest.fixture
def proxied(asterisk, make_service):
    port = free_port()
    proxy = TcpProxy(port)
    svc = make_service({"ari": {"url": f"http://127.0.0.1:{port}", "reconnect_max_backoff_s": 1.0}})
    yield proxy, svc
    proxy.close()


def test_ari_socket_cut_mid_call_the_lost_hangup_is_recovered(asterisk, proxied, sipp):
    proxy, svc = proxied
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=1500))
    call = svc.post_call(BODY).json()
    assert svc.wait_state(call["id"], "connected")["state"] == "connected"
    proxy.cut(4)  # the callee hangs up during the cut: its events are lost
    time.sleep(0.5)
    health = svc.http.get("/healthz")
    assert health.status_code == 503 and health.json()["ari_connected"] is False
    r = svc.post_call({**BODY, "agent": "1002"})
    assert r.status_code == 503 and r.json()["error"] == "asterisk-unavailable"
    final = svc.wait_state(call["id"], "ended", timeout=20)
    assert final["reason"] == "completed"
    assert agent.wait_for(lambda m: m.direction == "received" and m.method == "BYE", timeout=10)
    assert svc.http.get("/healthz").status_code == 200
    assert metric(svc, "c2d_ari_reconnects_total") >= 1
    assert asterisk.wait_idle() == ([], [])
    new_call_works(asterisk, svc, sipp, agent, trunk)


def test_cancel_while_ari_is_cut_is_refused_then_works_after_the_reconnect(asterisk, proxied, sipp):
    """SPEC §2: DELETE while ARI is down is 503 and changes nothing (the call
    stays up, not "cancelled" with its legs still up); after the reconnect it works."""
    proxy, svc = proxied
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    sipp("trunk", TRUNK_PORT, uas_scenario())
    call = svc.post_call(BODY).json()
    assert svc.wait_state(call["id"], "connected")["state"] == "connected"
    proxy.cut(3)
    time.sleep(0.5)
    r = svc.http.delete(f"/click2dial/calls/{call['id']}")
    assert r.status_code == 503 and r.json()["error"] == "asterisk-unavailable", r.text
    assert svc.http.get(f"/click2dial/calls/{call['id']}").json()["state"] == "connected"
    deadline = time.monotonic() + 20
    while svc.http.get("/healthz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    r = svc.http.delete(f"/click2dial/calls/{call['id']}")
    assert r.status_code == 200, r.text
    # SPEC §2: hung up through the API after the callee answered: completed, by the API.
    ended = svc.wait_state(call["id"], "ended")
    assert (ended["reason"], ended["ended_by"]) == ("completed", "api"), ended
    assert agent.wait_for(lambda m: m.direction == "received" and m.method == "BYE", timeout=10)
    assert asterisk.wait_idle() == ([], [])


def test_asterisk_crash_mid_call_closes_the_call_and_recovers(asterisk, service, sipp):
    sipp("agent", AGENT_PORT, uas_scenario())
    sipp("trunk", TRUNK_PORT, uas_scenario())
    call = service.post_call(BODY).json()
    assert service.wait_state(call["id"], "connected")["state"] == "connected"
    asterisk.crash_and_restart()
    final = service.wait_state(call["id"], "ended", timeout=30)
    assert final["reason"] == "completed"
    deadline = time.monotonic() + 20
    while service.http.get("/healthz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    new_call_works(asterisk, service, sipp)


def test_asterisk_crash_while_agent_rings_ends_the_call_failed(asterisk, service, sipp):
    sipp("agent", AGENT_PORT, uas_scenario(answer=False))
    call = service.post_call(BODY).json()
    time.sleep(1)
    asterisk.crash_and_restart()
    final = service.wait_state(call["id"], "ended", timeout=30)
    assert final["state"] == "ended" and final["reason"] in ("failed", "agent_no_answer")


@pytest.mark.parametrize("phase", ["agent_ringing", "callee_ringing", "connected"])
def test_service_killed_mid_call_and_restarted_finishes_the_call(asterisk, make_service, sipp, phase):
    # The phone that rings answers well after the restart is done (a callee
    # that answers while the service is away is dropped by Asterisk, and
    # that call ends failed: test_callee_answered_while_the_service_was_down_...),
    # and well before the ring timers, which restart at full length. A
    # restart took 8-11 s on a loaded two-core machine: the phone rings RING_THROUGH_RESTART_MS.
    service = make_service({"dial": {"agent_ring_timeout_s": 40, "callee_ring_timeout_s": 40}})
    agent_ring = RING_THROUGH_RESTART_MS if phase == "agent_ringing" else 0
    callee_ring = RING_THROUGH_RESTART_MS if phase == "callee_ringing" else 0
    agent = sipp("agent", AGENT_PORT, uas_scenario(ring_ms=agent_ring))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=callee_ring, talk_ms=3000))
    call = service.post_call(BODY).json()
    ringing = agent if phase == "agent_ringing" else trunk
    if phase == "connected":
        assert service.wait_state(call["id"], "connected")["state"] == "connected"
    else:   # the phone rings: its 180 is sent
        assert ringing.wait_for(lambda m: m.direction == "sent" and m.status == 180)
    service.kill()
    time.sleep(0.5)
    service.start()
    restarted = time.time()
    final = service.wait_state(call["id"], "ended", timeout=30)
    if phase != "connected":   # the scenario held: the phone answered once the service was back
        answer = next(m for m in ringing.sent() if m.status == 200 and "INVITE" in m.header("CSeq")[0])
        assert answer.time > restarted, (answer.time - restarted, "s: answered before the restart was done")
    assert final["reason"] == "completed", final
    assert final["answered_at"] is not None
    assert asterisk.wait_idle() == ([], [])
    assert service.http.get("/click2dial/calls").json()["total"] == 1
    new_call_works(asterisk, service, sipp, agent, trunk)


def test_agent_hung_up_while_the_service_was_down_the_callee_stops_ringing(asterisk, make_service, sipp):
    """The callee rings, the service dies, the agent hangs up meanwhile: after
    the restart the customer gets a CANCEL at once (not a ring timeout)."""
    svc = make_service({"dial": {"callee_ring_timeout_s": 40}})
    # The agent hangs up 4 s after answering: after the kill, also when the
    # callee's INVITE takes a loaded machine a second or two.
    agent = sipp("agent", AGENT_PORT, uas_scenario(talk_ms=4000))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False))
    call = svc.post_call(BODY).json()
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "INVITE")
    svc.kill()
    assert agent.wait_for(lambda m: m.direction == "sent" and m.method == "BYE", timeout=10)
    time.sleep(0.5)
    svc.start()
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "CANCEL", timeout=5)
    final = svc.wait_state(call["id"], "ended", timeout=10)
    assert final["reason"] == "cancelled", final
    assert asterisk.wait_idle() == ([], [])


def test_browser_call_taken_back_after_a_restart_is_not_cut_by_the_agent_ring_timer(
        asterisk, make_service, sipp):
    """A WebRTC call whose callee rings through a restart: the browser is the
    caller, not a ringing leg — only the callee's ring timer runs."""
    svc = make_service({"dial": {"agent_ring_timeout_s": 3, "callee_ring_timeout_s": 40}})
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=RING_THROUGH_RESTART_MS, talk_ms=1000))
    phone = sipp("phone", 5081, uac_scenario(target="0215550100", from_user="2001", wait_bye=True),
                 uac_target="127.0.0.1:5060", calls=1)
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "INVITE")
    svc.kill()
    time.sleep(0.5)
    svc.start()
    assert phone.wait_for(lambda m: m.direction == "received" and m.status == 200,
                          timeout=RING_THROUGH_RESTART_MS / 1000 + 10)
    call = svc.http.get("/click2dial/calls").json()["calls"][0]
    final = svc.wait_state(call["id"], "ended", timeout=15)
    assert final["origin"] == "webrtc" and final["reason"] == "completed", final
    assert len(trunk.received("INVITE")) == 1
    assert asterisk.wait_idle() == ([], [])


def test_browser_call_not_yet_journalled_when_the_service_died_is_taken_after_the_restart(
        asterisk, make_service, sipp):
    """The service died while the browser's call waited for its first record
    (the store was locked): after the restart the call is journalled and
    put through, never left waiting in the app."""
    svc = make_service()
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=1000))
    with svc.journal_locked():
        phone = sipp("phone", 5081, uac_scenario(target="0215550100", from_user="2001", wait_bye=True,
                                                 headers=["X-Platforma-Call-Ref: waited-1"]),
                     uac_target="127.0.0.1:5060", calls=1)
        assert phone.wait_for(lambda m: m.direction == "received" and m.status == 180, timeout=10)
        time.sleep(0.5)
        svc.kill()
    svc.start()
    assert phone.wait_for(lambda m: m.direction == "received" and m.status == 200, timeout=15)
    calls = svc.http.get("/click2dial/calls").json()["calls"]
    assert len(calls) == 1, calls
    final = svc.wait_state(calls[0]["id"], "ended", timeout=15)
    assert final["origin"] == "webrtc" and final["reason"] == "completed" and final["call_ref"] == "waited-1"
    assert len(trunk.received("INVITE")) == 1
    assert asterisk.wait_idle() == ([], [])


def test_service_killed_during_the_busy_tone_never_dials_the_callee_again(asterisk, make_service, sipp):
    """The outcome was known (busy) when the service died: after the restart
    the call ends callee_busy, and the customer gets no second INVITE."""
    svc = make_service({"dial": {"tone_s": 6}})
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(reject_code=486))
    call = svc.post_call(BODY).json()
    assert trunk.wait_for(lambda m: m.direction == "sent" and m.status == 486)
    time.sleep(0.5)   # the tone plays
    svc.kill()
    svc.start()
    final = svc.wait_state(call["id"], "ended", timeout=20)
    assert final["reason"] == "callee_busy", final
    time.sleep(0.5)
    assert len(trunk.received("INVITE")) == 1
    assert asterisk.wait_idle() == ([], [])


def test_callee_answered_while_the_service_was_down_is_not_dialled_again(asterisk, service, sipp):
    """Asterisk drops a leg that answers while its app is away; after the
    restart the call ends failed — never a second call to the customer."""
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=1000, talk_ms=3000))
    call = service.post_call(BODY).json()
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "INVITE")
    service.kill()
    time.sleep(3)     # the callee answers while nobody is there
    service.start()
    final = service.wait_state(call["id"], "ended", timeout=20)
    assert final["reason"] in ("failed", "completed"), final
    time.sleep(0.5)
    assert len(trunk.received("INVITE")) == 1
    assert asterisk.wait_idle() == ([], [])


def test_orphan_legs_of_a_lost_call_are_torn_down_on_start(asterisk, service, sipp):
    sipp("agent", AGENT_PORT, uas_scenario())
    sipp("trunk", TRUNK_PORT, uas_scenario())
    call = service.post_call(BODY).json()
    assert service.wait_state(call["id"], "connected")["state"] == "connected"
    service.kill()
    service.lose_journal()  # the journal is lost too: the legs in Asterisk are orphans now
    service.start()
    chans, bridges = asterisk.wait_idle(timeout=10)
    assert chans == [] and bridges == []


def test_metrics_and_health_after_real_calls(asterisk, service, sipp):
    sipp("agent", AGENT_PORT, uas_scenario())
    sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=300))
    call = service.post_call(BODY).json()
    service.wait_state(call["id"], "ended")
    r = service.post_call({**BODY, "agent": "1009"})
    service.wait_state(r.json()["id"], "ended")
    service.post_call({**BODY, "agent": "x"})
    assert metric(service, "c2d_calls_total", 'origin="rest",reason="completed"') == 1
    assert metric(service, "c2d_calls_total", 'origin="rest",reason="agent_unavailable"') == 1
    assert metric(service, "c2d_calls_started_total", 'origin="rest"') == 2
    assert metric(service, "c2d_calls_active") == 0
    assert metric(service, "c2d_ari_connected") == 1
    assert metric(service, "c2d_requests_rejected_total", 'error="invalid-request"') == 1
    for phase in ("agent_answer", "callee_answer", "bridge"):
        assert metric(service, "c2d_call_setup_seconds_count", f'phase="{phase}"') == 1
    assert service.http.get("/healthz").json() == {"status": "ok", "ari_connected": True,
                                                   "store_writable": True, "webhooks": {"pending": 0, "oldest_pending_s": 0.0, "backlog_growing": False}}
