"""Click-to-dial over REST through the real Asterisk (SPEC §2, §3, §5)."""

from __future__ import annotations

import time

import pytest

from platforma_c2d.store.journal import Journal
from testbed.sipmessages import sip_user
from testbed.sipp import outlast_invite_retransmissions, uas_scenario

AGENT_PORT, TRUNK_PORT = 5071, 5070




def assert_trunk_never_saw(trunk, forbidden: str) -> None:
    """SPEC §3.7: no message the trunk received may carry ``forbidden``."""
    for msg in trunk.received():
        for name in ("From", "P-Asserted-Identity", "Remote-Party-ID", "Contact", "To"):
            for value in msg.header(name):
                assert sip_user(value) != forbidden, f"{msg.first_line}: {name}: {value}"


def cdr_rows_of(asterisk, call_id: str, count: int = 1):
    """CDR rows of a call's channels (ids ``c2d-<call id>-…``), whatever their variables say."""
    return asterisk.wait_cdr_rows(lambda r: call_id in r["uniqueid"] or call_id in r["dstchannel"]
                                  or call_id in r["linkedid"], count=count)


def assert_cdr_tagged(asterisk, call_id: str, call_ref: str, unanswered: bool = False) -> list[dict]:
    """SPEC §5: every CDR row of the call carries call_ref exactly once.

    ``unanswered``: no leg of the call was ever answered, so Asterisk writes
    rows only when cdr.conf says ``unanswered=yes`` (ours does, Asterisk's
    default does not).
    """
    rows = cdr_rows_of(asterisk, call_id)
    assert rows or (unanswered and not asterisk.unanswered_cdrs), "no CDR row for the call"
    for row in rows:
        assert row["call_ref"] == call_ref, row
        assert row["c2d_call_id"] == call_id, row
    return rows


@pytest.mark.admin_configs
def test_success_agent_then_callee_then_callee_hangs_up(asterisk, service, sipp):
    agent = sipp("agent", AGENT_PORT, uas_scenario(ring_ms=200))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=300, talk_ms=2000))
    r = service.post_call({"agent": "1001", "callee": "0215550100",
                           "outbound_id": "0215550199", "call_ref": "ord-42"})
    assert r.status_code == 201, r.text
    call = r.json()
    assert r.headers["Location"] == f"/click2dial/calls/{call['id']}"
    assert call["state"] == "dialing_agent" and call["origin"] == "rest"
    assert call["clid"] == "0215550199" and call["call_ref"] == "ord-42"
    assert service.wait_state(call["id"], "connected")["state"] == "connected"
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert final["state"] == "ended" and final["reason"] == "completed", final
    assert final["ended_by"] == "callee", final
    assert 1.5 <= final["duration_s"] <= 3.5, final
    assert final["answered_at"] and final["ended_at"]
    history = service.http.get(f"/click2dial/calls/{call['id']}/history").json()
    assert [(h["state"], h["reason"]) for h in history["states"]] == [
        ("dialing_agent", None), ("dialing_callee", None), ("connected", None), ("ended", "completed")]
    assert history["states"][-1]["at"] >= final["ended_at"]   # journalled as it ended
    assert history["states"][2]["at"] >= final["answered_at"]

    invite = trunk.received("INVITE")[0]
    assert invite.first_line.startswith("INVITE sip:0215550100@")
    assert sip_user(invite.header("From")[0]) == "0215550199"
    assert [sip_user(v) for v in invite.header("P-Asserted-Identity")] == ["0215550199"]
    assert_trunk_never_saw(trunk, "1001")
    # The agent's phone showed the callee's number.
    assert sip_user(agent.received("INVITE")[0].header("From")[0]) == "0215550100"

    rows = assert_cdr_tagged(asterisk, call["id"], "ord-42")
    assert any(r["disposition"] == "ANSWERED" and r["dstchannel"].startswith("PJSIP/trunk-") for r in rows)
    asterisk.wait_idle()
    assert asterisk.channels() == [] and asterisk.bridges() == []


CALL = {"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199", "call_ref": "t-1"}


def place(service, **changes) -> dict:
    r = service.post_call({**CALL, **changes})
    assert r.status_code == 201, r.text
    return r.json()


def test_success_agent_hangs_up_first(asterisk, service, sipp):
    sipp("agent", AGENT_PORT, uas_scenario(talk_ms=1500))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    call = place(service, call_ref="agent-bye")
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert (final["reason"], final["ended_by"]) == ("completed", "agent")
    assert 0.5 <= final["duration_s"] <= 2.5
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "BYE")
    assert_trunk_never_saw(trunk, "1001")
    assert_cdr_tagged(asterisk, call["id"], "agent-bye")


@pytest.mark.admin_configs
def test_agent_busy_never_dials_the_callee(asterisk, service, sipp):
    # The phone's reason phrase tries to add a key to its leg's UserEvent (see
    # FORGED_REASON): the call keeps the phone's own code.
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=100, reject_code=486, reason=FORGED_REASON[486]))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    call = place(service, call_ref="agent-busy")
    final = service.wait_state(call["id"], "ended")
    assert (final["reason"], final["ended_by"]) == ("agent_busy", "agent")
    assert final["sip_code"] == 486, final
    assert final["answered_at"] is None and final["duration_s"] == 0
    history = service.http.get(f"/click2dial/calls/{call['id']}/history").json()
    assert [(h["state"], h["reason"]) for h in history["states"]] == [
        ("dialing_agent", None), ("ended", "agent_busy")]
    time.sleep(0.5)
    assert trunk.received() == []
    rows = assert_cdr_tagged(asterisk, call["id"], "agent-busy", unanswered=True)
    assert all(r["disposition"] != "ANSWERED" for r in rows)


def test_agent_no_answer_ends_after_the_ring_timeout(asterisk, service, sipp):
    agent = sipp("agent", AGENT_PORT, uas_scenario(answer=False))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    call = place(service, call_ref="t-noans")
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert (final["reason"], final["ended_by"]) == ("agent_no_answer", "timeout")
    assert agent.wait_for(lambda m: m.direction == "received" and m.method == "CANCEL")
    # The agent's phone rang for the ring timeout (agent_ring_timeout_s = 4): from
    # its INVITE to its CANCEL, as the phone logged them.
    invite, cancel = agent.initial_invites()[0], agent.received("CANCEL")[0]   # first copies
    assert 3.0 <= cancel.time - invite.time <= 8.0, cancel.time - invite.time
    assert trunk.received() == []
    rows = assert_cdr_tagged(asterisk, call["id"], "t-noans", unanswered=True)
    assert all(r["disposition"] in ("NO ANSWER", "CANCEL", "FAILED") for r in rows)


def test_agent_unregistered_is_agent_unavailable(asterisk, service, sipp):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    r = service.post_call({**CALL, "agent": "1009"})
    assert r.status_code == 201, r.text
    final = service.wait_state(r.json()["id"], "ended")
    assert final["reason"] == "agent_unavailable"
    assert trunk.received() == []


#: The Q.850 cause chan_pjsip gives a SIP final response (hangup_sip2cause).
CAUSE_OF_SIP = {486: 17, 480: 19, 503: 34, 404: 1}
#: A reason phrase is the far end's text, and it may hold a comma: the busy
#: callee's says another key of the leg's UserEvent (a forged 503, the code that
#: holds the trunk). The call's sip_code must stay the trunk's code.
FORGED_REASON = {486: "Busy Here,sip_code: 503"}


@pytest.mark.admin_configs
@pytest.mark.parametrize("code,reason", [(486, "callee_busy"), (480, "callee_no_answer"),
                                         (503, "callee_unavailable"), (404, "callee_unavailable")])
def test_callee_failure_plays_a_tone_then_ends(asterisk, service, sipp, code, reason):
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=100, reject_code=code, reason=FORGED_REASON.get(code)))
    call = place(service, call_ref=f"fail-{code}")
    assert service.wait_state(call["id"], "dialing_callee")["state"] in ("dialing_callee", "ended")
    final = service.wait_state(call["id"], "ended")
    assert (final["reason"], final["ended_by"]) == (reason, "callee")
    assert final["answered_at"] is None and final["duration_s"] == 0
    # SPEC §2: why, in the carrier's words — the callee leg decided.
    assert (final["cause"], final["sip_code"]) == (CAUSE_OF_SIP[code], code), final
    # The agent is hung up by Asterisk (BYE) only after the tone (tone_s = 1).
    bye = agent.wait_for(lambda m: m.direction == "received" and m.method == "BYE")
    assert bye
    assert_cdr_tagged(asterisk, call["id"], f"fail-{code}")


def test_cancel_during_the_busy_tone_keeps_the_known_outcome(asterisk, make_service, sipp):
    """The CRM cancels while the agent hears the busy tone: the attempt is
    still callee_busy (that is why it failed), and every leg is gone."""
    svc = make_service({"dial": {"tone_s": 10}})
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(reject_code=486))
    call = place(svc, call_ref="busy-cancel")
    assert trunk.wait_for(lambda m: m.direction == "sent" and m.status == 486)
    time.sleep(0.3)
    r = svc.http.delete(f"/click2dial/calls/{call['id']}")
    assert r.status_code == 200 and r.json()["state"] == "ended"
    assert (r.json()["reason"], r.json()["ended_by"]) == ("callee_busy", "callee")
    assert agent.wait_for(lambda m: m.direction == "received" and m.method == "BYE")
    assert asterisk.wait_idle() == ([], [])


def test_a_callee_who_hangs_up_as_they_answer_ends_the_call_by_their_hangup(asterisk, service, sipp):
    """The callee answers and sends BYE at once, as the service bridges them with the
    agent: the bridge finds the callee's leg gone, and the call ends as the callee's
    hangup says (``completed``, by the callee), never ``failed`` because the bridge
    could not take a leg that had left; every channel is gone."""
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=1))   # 200 OK, ACK, BYE
    call = place(service, call_ref="bye-at-once")
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert trunk.wait_for(lambda m: m.direction == "sent" and m.method == "BYE")
    assert (final["reason"], final["ended_by"]) == ("completed", "callee"), final
    details = [e["detail"] for e in Journal(service.store_url).events(call["id"])]
    assert not [d for d in details if "bridge failed" in d], details
    assert agent.wait_for(lambda m: m.direction == "received" and m.method == "BYE")
    assert asterisk.wait_idle() == ([], [])


def test_callee_no_answer_after_ring_timeout(asterisk, service, sipp):
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False))
    call = place(service)
    final = service.wait_state(call["id"], "ended", timeout=20)
    assert (final["reason"], final["ended_by"]) == ("callee_no_answer", "timeout")
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "CANCEL")
    # Our ring timer cancelled the leg: no answer, and no final word from the carrier.
    assert (final["cause"], final["sip_code"]) == (19, None), final


def test_callee_that_plays_its_own_ringback_183_is_no_answer(asterisk, make_service, sipp):
    """A network that sends 183 with early media instead of 180 rings all the same."""
    svc = make_service({"dial": {"callee_ring_timeout_s": 4}})
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False, early_media=True))
    call = place(svc)
    final = svc.wait_state(call["id"], "ended", timeout=20)
    assert final["reason"] == "callee_no_answer", final
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "CANCEL")


def test_trunk_that_never_answers_the_invite_is_callee_unavailable(asterisk, make_service, sipp):
    """SPEC §3.5: nothing answers the INVITE at all (no 100, no 180): unreachable,
    not "no answer" — and the agent hears the congestion tone, then the end."""
    svc = make_service({"dial": {"callee_ring_timeout_s": 4}})
    agent = sipp("agent", AGENT_PORT, uas_scenario())   # nothing listens on the trunk's port
    placed_at = time.monotonic()
    call = place(svc)
    final = svc.wait_state(call["id"], "ended", timeout=20)
    assert final["reason"] == "callee_unavailable", final
    assert agent.wait_for(lambda m: m.direction == "received" and m.method == "BYE")
    assert asterisk.wait_idle() == ([], [])
    outlast_invite_retransmissions(sipp, TRUNK_PORT, placed_at)


def test_agent_hangs_up_while_callee_rings_is_cancelled(asterisk, service, sipp):
    sipp("agent", AGENT_PORT, uas_scenario(talk_ms=1000))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False))
    call = place(service)
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert (final["reason"], final["ended_by"]) == ("cancelled", "agent")
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "CANCEL")
    assert_trunk_never_saw(trunk, "1001")


def test_delete_while_agent_rings(asterisk, service, sipp):
    agent = sipp("agent", AGENT_PORT, uas_scenario(answer=False))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    call = place(service)
    assert agent.wait_for(lambda m: m.direction == "received" and m.method == "INVITE")
    r = service.http.delete(f"/click2dial/calls/{call['id']}")
    assert r.status_code == 200 and r.json()["state"] == "ended" and r.json()["reason"] == "cancelled"
    assert r.json()["ended_by"] == "api"
    assert agent.wait_for(lambda m: m.direction == "received" and m.method == "CANCEL")
    assert trunk.received() == []


def test_delete_while_callee_rings(asterisk, service, sipp):
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False))
    call = place(service)
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "INVITE")
    r = service.http.delete(f"/click2dial/calls/{call['id']}")
    assert (r.json()["reason"], r.json()["ended_by"], r.json()["answered_at"]) == ("cancelled", "api", None)
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "CANCEL")


def test_the_agents_ringback_is_played_in_g711_not_resampled(asterisk, service, sipp):
    """While the callee rings, Asterisk's own view of the agent's leg (both halves of
    its Local channel) is G.711: the ringback tone (8 kHz) is never resampled, as it
    was when the Local channel ran as slin192 (every audio format)."""
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False))
    call = place(service)
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "INVITE")
    time.sleep(0.5)   # the ringback starts with the callee's leg
    for chan_id in (f"c2d-{call['id']}-agent", f"c2d-{call['id']}-agent-dial"):
        r = asterisk.ari.get(f"/channels/{chan_id}")
        assert r.status_code == 200, r.text
        shown = asterisk.cli(f"core show channel {r.json()['name']}")
        formats = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
                   for line in shown.splitlines() if "Format" in line or "Transcode" in line}
        assert "ulaw" in formats["NativeFormats"], shown
        assert "192" not in formats["NativeFormats"] + formats["WriteTranscode"], shown
    service.http.delete(f"/click2dial/calls/{call['id']}")
    service.wait_state(call["id"], "ended", timeout=15)


def test_delete_after_the_callee_answered_is_completed_and_ended_by_the_api(asterisk, service, sipp):
    """SPEC §2: `cancelled` only before the callee answered; after, `completed`,
    with `ended_by: api` -- the customer was reached."""
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    call = place(service)
    assert service.wait_state(call["id"], "connected")["state"] == "connected"
    r = service.http.delete(f"/click2dial/calls/{call['id']}")
    assert r.status_code == 200 and r.json()["reason"] == "completed", r.json()
    assert r.json()["ended_by"] == "api" and r.json()["answered_at"] and r.json()["duration_s"] > 0
    assert service.http.get(f"/click2dial/calls?state=ended&call_ref=t-1").json()["calls"] == [r.json()]
    assert agent.wait_for(lambda m: m.direction == "received" and m.method == "BYE")
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "BYE")
    # A second DELETE changes nothing.
    again = service.http.delete(f"/click2dial/calls/{call['id']}")
    assert again.status_code == 200 and again.json() == r.json()


def test_random_draws_only_from_the_pool(asterisk, service, sipp):
    pool = {"0115550001", "0115550002"}
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(reject_code=486))
    # A callee number of this test alone: the trunk's port may still get a
    # retransmitted INVITE of an earlier test's leg (to another number).
    callee = "0215550177"

    def invites():
        return [m for m in trunk.initial_invites() if sip_user(m.first_line.split()[1]) == callee]

    drawn = []
    for i in range(4):
        call = place(service, outbound_id="random", callee=callee)
        assert call["outbound_id"] == "random" and call["clid"] in pool, call
        drawn.append(call["clid"])
        # One call of agent 1001 at a time: this one is over (busy, the tone,
        # every channel gone) and its INVITE is in the trunk's log before the next.
        assert service.wait_state(call["id"], "ended", timeout=30)["state"] == "ended"
        assert asterisk.wait_idle() == ([], [])
        deadline = time.monotonic() + 10
        while len(invites()) < i + 1:
            assert time.monotonic() < deadline, trunk.messages()
            time.sleep(0.1)
    # Each INVITE presented the number its call drew, and only pool numbers.
    assert [sip_user(m.header("From")[0]) for m in invites()] == drawn


@pytest.mark.admin_configs
def test_external_agent_goes_out_through_the_trunk(asterisk, service, sipp):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=1000))
    call = place(service, agent="0215550111", call_ref="ext-agent")
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert final["reason"] == "completed"
    targets = [m.first_line.split()[1] for m in trunk.initial_invites()]
    assert targets[0].startswith("sip:0215550111@") and targets[1].startswith("sip:0215550100@")
    callee_invite = trunk.initial_invites()[1]
    assert sip_user(callee_invite.header("From")[0]) == "0215550199"
    # Through the trunk only the CLID is presented, to the external agent too:
    # never the callee's number (that would spoof it past [clid].allowed).
    agent_invite = trunk.initial_invites()[0]
    assert sip_user(agent_invite.header("From")[0]) == "0215550199"
    assert [sip_user(v) for v in agent_invite.header("P-Asserted-Identity")] == ["0215550199"]
    for msg in trunk.received():
        for name in ("From", "P-Asserted-Identity"):
            assert all("0215550100" not in v for v in msg.header(name)) or msg.method is None


@pytest.mark.parametrize("body,bad", [
    ({"agent": "10", "callee": "0215550100", "outbound_id": "random"}, {"agent"}),
    ({"agent": "1001", "callee": "+27215550100", "outbound_id": "random"}, {"callee"}),
    ({"agent": "1001", "callee": "0215550100", "outbound_id": "Random"}, {"outbound_id"}),
    ({"agent": "1001", "callee": "0215550100\n", "outbound_id": "random", "call_ref": "a b"},
     {"callee", "call_ref"}),
    ({"agent": 1001, "callee": 215550100, "outbound_id": 215550199}, {"agent", "callee", "outbound_id"}),
    ({"agent": "1001", "callee": "0215550100", "outbound_id": "random",
      "call_ref": "x", "contact_ref": "y"}, {"contact_ref"}),
])
def test_invalid_input_is_400_naming_each_field_and_dials_nothing(asterisk, service, sipp, body, bad):
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    r = service.post_call(body)
    assert r.status_code == 400
    err = r.json()
    assert err["error"] == "invalid-request"
    assert set(err["details"]["fields"]) == bad
    time.sleep(0.5)
    assert agent.received() == [] and trunk.received() == []
    assert service.http.get("/click2dial/calls").json()["total"] == 0


def test_body_not_declared_json_is_415_and_declared_json_that_is_not_json_is_400(asterisk, service):
    """SPEC §2: 415 only for a body not declared JSON; declared JSON that does not parse,
    is not UTF-8 or holds NaN is 400 invalid-json, its problem under details.fields.body."""
    r = service.http.post("/click2dial/calls", content=b"agent=1001", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and r.json()["error"] == "unsupported-media-type"
    assert "Content-Type" in r.json()["details"]["fields"]
    for body in (b"{not json", b"", b'{"agent": NaN}', b"\xff\xfe{}", b'{"agent": "1001",'):
        r = service.http.post("/click2dial/calls", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"] == "invalid-json", (body, r.text)
        assert list(r.json()["details"]["fields"]) == ["body"]
    # JSON this API refuses is a 400 naming what is wrong.
    r = service.http.post("/click2dial/calls", content=b'{"agent": "1001", "agent": "1002"}',
                          headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["details"]["fields"] == {"agent": "given more than once"}
    assert service.http.get("/click2dial/calls").json()["total"] == 0


def test_external_agent_must_press_1_before_the_callee_is_dialled(asterisk, make_service, sipp):
    svc = make_service({"dial": {"confirm_external_agent": True, "confirm_timeout_s": 5}})
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=2500, dtmf="1"))
    call = place(svc, agent="0215550111", call_ref="confirmed")
    final = svc.wait_state(call["id"], "ended", timeout=20)
    assert final["reason"] == "completed" and final["answered_at"], final
    targets = [m.first_line.split()[1] for m in trunk.initial_invites()]
    assert targets[0].startswith("sip:0215550111@") and targets[1].startswith("sip:0215550100@")


def test_external_agent_answered_by_a_machine_never_dials_the_callee(asterisk, make_service, sipp):
    svc = make_service({"dial": {"confirm_external_agent": True, "confirm_timeout_s": 2}})
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())  # answers, never presses 1
    call = place(svc, agent="0215550111", call_ref="voicemail")
    final = svc.wait_state(call["id"], "ended", timeout=20)
    assert final["reason"] == "agent_no_answer"
    targets = [m.first_line.split()[1] for m in trunk.initial_invites()]
    assert len(targets) == 1 and targets[0].startswith("sip:0215550111@")
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "BYE")
