"""REST calls bridged by Asterisk's Dial() (``[dial] bridging = "dialplan"``, ADR 0018),
followed by the service through ARI, against the real Asterisk and SIPp peers."""

from __future__ import annotations

import time

import pytest

from testbed.asterisk import CONF_DIR
from testbed.carrier import carrier_scenario
from testbed.sipmessages import sip_user
from testbed.sipp import uas_scenario
from tests.integration.test_trunk_pacing import (_place_at_once, _place_one_after_the_other, _wait_ended,
                                                 three_calls_paced_on_the_wire)

AGENT_PORT, TRUNK_PORT = 5071, 5070
DIALPLAN = {"dial": {"bridging": "dialplan"}}
CALL = {"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199", "call_ref": "nat-1"}

pytestmark = pytest.mark.skipif("[c2d-native-call]" not in (CONF_DIR / "extensions.conf").read_text(),
                                reason="the dialplan has no [c2d-native-call] context yet")


def received(peer, method: str) -> list:
    """The ``method`` requests ``peer`` received, waiting up to 10 s for the first:
    SIPp logs a message when its loop gets to it, after the journal may have
    the call ended."""
    return peer.wait_for(lambda m: m.direction == "received" and m.method == method)


def states_of(service, call_id: str) -> list[tuple[str, str | None]]:
    history = service.http.get(f"/click2dial/calls/{call_id}/history").json()
    return [(h["state"], h["reason"]) for h in history["states"]]


def native_continued(asterisk, call_id: str) -> bool:
    """Whether Asterisk has the call's agent leg in [c2d-native-call] (not in Stasis)."""
    for chan in asterisk.channels():
        if chan["id"] == f"c2d-{call_id}-agent":
            return (chan.get("dialplan") or {}).get("context") == "c2d-native-call"
    return False


def test_connected_then_callee_hangs_up(asterisk, make_service, sipp):
    service = make_service(DIALPLAN)
    agent = sipp("agent", AGENT_PORT, uas_scenario(ring_ms=200))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=300, talk_ms=2000))
    r = service.post_call(CALL)
    assert r.status_code == 201, r.text
    call = r.json()
    connected = service.wait_state(call["id"], "connected")
    assert connected["state"] == "connected", connected
    # Bridged by Asterisk: the agent leg runs our context, and no bridge of ours exists.
    assert native_continued(asterisk, call["id"])
    assert not [b for b in asterisk.bridges() if b["id"].startswith("c2d-")]
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert (final["reason"], final["ended_by"]) == ("completed", "callee"), final
    assert 1.5 <= final["duration_s"] <= 3.5, final
    assert final["answered_at"]
    assert [s for s, _ in states_of(service, call["id"])] == [
        "dialing_agent", "dialing_callee", "connected", "ended"]
    invite = trunk.received("INVITE")[0]
    assert invite.first_line.startswith("INVITE sip:0215550100@")
    assert sip_user(invite.header("From")[0]) == "0215550199"
    assert [sip_user(v) for v in invite.header("P-Asserted-Identity")] == ["0215550199"]
    # The agent's phone showed the callee's number.
    assert sip_user(agent.received("INVITE")[0].header("From")[0]) == "0215550100"


def test_agent_hangs_up_connected_call(asterisk, make_service, sipp):
    service = make_service(DIALPLAN)
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=100, talk_ms=1500))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=100))
    call = service.post_call(CALL).json()
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert (final["reason"], final["ended_by"]) == ("completed", "agent"), final
    assert final["answered_at"]
    assert received(trunk, "BYE"), "the trunk was not hung up"


def test_delete_connected_call(asterisk, make_service, sipp):
    service = make_service(DIALPLAN)
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=100))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=100))
    call = service.post_call(CALL).json()
    assert service.wait_state(call["id"], "connected")["state"] == "connected"
    r = service.http.delete(f"/click2dial/calls/{call['id']}")
    assert r.status_code in (200, 202, 204), r.text
    final = service.wait_state(call["id"], "ended", timeout=10)
    assert (final["reason"], final["ended_by"]) == ("completed", "api"), final
    assert received(trunk, "BYE")


def test_delete_while_callee_rings(asterisk, make_service, sipp):
    service = make_service(DIALPLAN)
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=100))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False))
    call = service.post_call(CALL).json()
    deadline = time.monotonic() + 10
    while not trunk.received("INVITE") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert trunk.received("INVITE")
    r = service.http.delete(f"/click2dial/calls/{call['id']}")
    assert r.status_code in (200, 202, 204), r.text
    final = service.wait_state(call["id"], "ended", timeout=10)
    assert (final["reason"], final["ended_by"]) == ("cancelled", "api"), final
    assert received(trunk, "CANCEL")


@pytest.mark.parametrize("code, reason, sip_code", [(486, "callee_busy", 486),
                                                    (503, "callee_unavailable", 503),
                                                    # Dial() says NOANSWER for a 480: not our timeout
                                                    (480, "callee_no_answer", 480),
                                                    (404, "callee_unavailable", 404)])
def test_callee_refuses(asterisk, make_service, sipp, code, reason, sip_code):
    service = make_service(DIALPLAN)   # tone_s = 1
    agent = sipp("agent", AGENT_PORT, uas_scenario(ring_ms=100))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=100, reject_code=code))
    call = service.post_call(CALL).json()
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert (final["reason"], final["ended_by"], final["sip_code"]) == (reason, "callee", sip_code), final
    assert final["answered_at"] is None
    # The agent heard the tone (played by the dialplan) for tone_s before the hang-up.
    refused = next(m for m in trunk.sent() if m.status == code)
    bye = next(m for m in agent.received() if m.method == "BYE")
    # Two SIPp peers' stamps, each late by its loop's lag (once 0.9997 s for
    # the 1 s tone): 0.2 s of slack below; without the tone the BYE follows
    # the refusal within a few milliseconds.
    assert bye.time - refused.time >= 0.8, bye.time - refused.time


def test_agent_hangs_up_while_callee_rings(asterisk, make_service, sipp):
    service = make_service(DIALPLAN)
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=100, talk_ms=1500))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False))
    call = service.post_call(CALL).json()
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert (final["reason"], final["ended_by"]) == ("cancelled", "agent"), final
    assert received(trunk, "CANCEL")


def test_callee_no_answer(asterisk, make_service, sipp):
    service = make_service({"dial": {"bridging": "dialplan", "callee_ring_timeout_s": 2}})
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=100))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False))
    call = service.post_call(CALL).json()
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert (final["reason"], final["ended_by"]) == ("callee_no_answer", "timeout"), final
    assert received(trunk, "CANCEL")


@pytest.mark.parametrize("scenario, reason", [(dict(answer=False), "agent_no_answer"),
                                              (dict(reject_code=486), "agent_busy")])
def test_agent_not_reached_nothing_dialled(asterisk, make_service, sipp, scenario, reason):
    service = make_service(DIALPLAN)
    sipp("agent", AGENT_PORT, uas_scenario(**scenario))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    call = service.post_call(CALL).json()
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert final["reason"] == reason, final
    assert not trunk.received("INVITE")


def test_restart_while_connected_the_call_is_taken_back(asterisk, make_service, sipp):
    service = make_service(DIALPLAN)
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=100))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=100))   # talks until hung up
    call = service.post_call(CALL).json()
    assert service.wait_state(call["id"], "connected")["state"] == "connected"
    service.kill()
    time.sleep(0.5)
    assert native_continued(asterisk, call["id"])   # Asterisk's bridge goes on without the service
    service.start()
    assert service.get_call(call["id"])["state"] == "connected"   # taken back as it was
    assert not [m for m in trunk.received() if m.method == "BYE"]
    r = service.http.delete(f"/click2dial/calls/{call['id']}")
    assert r.status_code in (200, 202, 204), r.text
    final = service.wait_state(call["id"], "ended", timeout=10)
    assert (final["reason"], final["ended_by"]) == ("completed", "api"), final
    assert final["answered_at"]
    assert received(trunk, "BYE")


def test_call_ended_while_the_service_was_away_is_ended_at_the_restart(asterisk, make_service, sipp):
    service = make_service(DIALPLAN)
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=100))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=100, talk_ms=1500))
    call = service.post_call(CALL).json()
    assert service.wait_state(call["id"], "connected")["state"] == "connected"
    service.kill()
    assert trunk.wait_for(lambda m: m.direction == "sent" and m.method == "BYE", timeout=10)
    service.start()
    final = service.wait_state(call["id"], "ended", timeout=10)
    assert final["reason"] == "completed", final   # its outcome was lost with the events


def test_callee_legs_are_paced_on_the_wire(asterisk, make_service, sipp):
    # Each agent leg is continued into the dialplan at its slot, counted from the
    # previous callee's Dial (ADR 0019): three calls at once at 2/s.
    three_calls_paced_on_the_wire(make_service, sipp, {"bridging": "dialplan"})


def test_a_carrier_503_holds_the_trunk(asterisk, make_service, sipp):
    # The carrier takes one INVITE in any 5 s and refuses the next with 503; the
    # service holds the trunk 5 s after it: the third call's INVITE waits for that.
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, carrier_scenario(limit=1, window_ms=5000, retry_after_s=5, talk_ms=300))
    service = make_service({"dial": {"bridging": "dialplan"},
                            "trunk": {"hold_after_503_s": 5.0, "max_wait_s": 9.0},
                            "limits": {"max_active_calls_per_agent": 5}})
    first, second = _place_one_after_the_other(service)
    calls = _wait_ended(service, [first, second], timeout=20)
    assert calls[first]["reason"] == "completed", calls
    assert (calls[second]["reason"], calls[second]["sip_code"]) == ("callee_unavailable", 503), calls
    refusal = [m for m in trunk.sent() if m.status == 503][0]     # the first (a late ACK: sent again)
    [third] = _place_at_once(service, 1)
    assert _wait_ended(service, [third], timeout=20)[third]["reason"] == "completed"
    assert trunk.received("INVITE")[-1].time - refusal.time >= 5.0
    assert len([m for m in trunk.sent() if m.status == 503]) == 1


@pytest.fixture
def no_native_marker(asterisk):
    """The dialplan's C2D_NATIVE_CALL global emptied (a PBX that has not merged
    [c2d-native-call]) for one test, then set back."""
    asterisk.ari.post("/asterisk/variable", params={"variable": "C2D_NATIVE_CALL", "value": ""})
    yield
    asterisk.ari.post("/asterisk/variable", params={"variable": "C2D_NATIVE_CALL", "value": "1"})


def test_without_the_marker_calls_are_bridged_in_stasis_with_a_warning(asterisk, make_service, sipp,
                                                                     no_native_marker):
    service = make_service(DIALPLAN)
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=100))
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=100, talk_ms=1000))
    call = service.post_call(CALL).json()
    assert service.wait_state(call["id"], "connected")["state"] == "connected"
    assert f"c2d-{call['id']}" in [b["id"] for b in asterisk.bridges()]   # the service's own bridge
    assert not native_continued(asterisk, call["id"])
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert (final["reason"], final["ended_by"]) == ("completed", "callee"), final
    assert 'bridging = \\"dialplan\\" cannot be used' in service.tail_log(200)


def test_maximum_duration_ends_the_call_by_timeout(asterisk, make_service, sipp):
    service = make_service({"dial": {"bridging": "dialplan", "max_call_duration_s": 2}})
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=100))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=100))   # talks until hung up
    call = service.post_call(CALL).json()
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert (final["reason"], final["ended_by"]) == ("completed", "timeout"), final
    # Dial()'s S(2): the trunk's BYE 2 s after its answer (200 OK), as the trunk logged
    # them; not the default 4 h (slack for a loaded machine).
    answer = next(m for m in trunk.sent() if m.status == 200 and "INVITE" in m.header("CSeq")[0])
    bye = received(trunk, "BYE")[0]
    # SIPp stamps a message when its loop gets to it (late by a varying lag): 0.2 s of slack below.
    assert 1.8 <= bye.time - answer.time < 10, bye.time - answer.time
