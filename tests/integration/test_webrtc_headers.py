"""The X-Platforma INVITE path (SPEC §4): a SIPp UAC stands for the browser
phone of agent 2001 (context c2d-webrtc), the trunk is a SIPp UAS."""

from __future__ import annotations

import time

import pytest

from testbed.sipmessages import sip_user
from testbed.sipp import outlast_invite_retransmissions, uac_scenario, uas_scenario
from tests.integration.test_rest_calls import assert_cdr_tagged, assert_trunk_never_saw

PHONE_PORT, TRUNK_PORT = 5081, 5070
OUT, REF = "X-Platforma-Outbound-ID", "X-Platforma-Call-Ref"


def dial(sipp, callee="0215550100", headers=(), **kw):
    """The browser stand-in calls ``callee``; returns the peer (call finished or running)."""
    scenario = uac_scenario(target=callee, from_user="2001", headers=list(headers), **kw)
    return sipp("phone", PHONE_PORT, scenario, uac_target="127.0.0.1:5060", calls=1)


def final_response(phone, timeout=20.0) -> int:
    """The final response code the phone got to its INVITE."""
    found = phone.wait_for(lambda m: m.direction == "received" and m.status and m.status >= 200
                           and "INVITE" in (m.header("CSeq") or [""])[0], timeout=timeout)
    assert found, "no final response to the INVITE"
    return found[0].status


def only_call(service, timeout: float = 5.0) -> dict:
    """The one call in the journal (waits until the app has journalled it)."""
    deadline = time.monotonic() + timeout
    while True:
        calls = service.http.get("/click2dial/calls").json()["calls"]
        if calls or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(calls) == 1, calls
    return calls[0]


@pytest.mark.parametrize("out_name,ref_name", [(OUT, REF), (OUT.lower(), REF.lower()),
                                               (OUT.upper(), REF.upper())])
def test_headers_any_case_set_clid_and_call_ref(asterisk, service, sipp, out_name, ref_name):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=500))
    phone = dial(sipp, headers=[f"{out_name}: 0215550199", f"{ref_name}: ord-42"], talk_ms=1500)
    assert final_response(phone) == 200
    assert phone.wait(timeout=20) == 0
    ringing = [m for m in phone.received() if m.status == 180]
    assert ringing, "the browser got 180 Ringing while the callee rang"
    invite = trunk.received("INVITE")[0]
    assert invite.first_line.startswith("INVITE sip:0215550100@")
    assert sip_user(invite.header("From")[0]) == "0215550199"
    assert [sip_user(v) for v in invite.header("P-Asserted-Identity")] == ["0215550199"]
    assert_trunk_never_saw(trunk, "2001")
    call = service.wait_state(only_call(service)["id"], "ended")
    assert call["origin"] == "webrtc" and call["reason"] == "completed"
    assert call["agent"] == "2001" and call["clid"] == "0215550199" and call["call_ref"] == "ord-42"
    assert 0.8 <= call["duration_s"] <= 3
    assert_cdr_tagged(asterisk, call["id"], "ord-42")


@pytest.mark.admin_configs
def test_no_outbound_header_uses_the_default_clid(asterisk, service, sipp):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, headers=[f"{REF}: no-out"], talk_ms=500)
    assert final_response(phone) == 200
    assert sip_user(trunk.received("INVITE")[0].header("From")[0]) == "0115550000"
    phone.wait(timeout=20)
    call = service.wait_state(only_call(service)["id"], "ended")
    assert call["outbound_id"] == "" and call["clid"] == "0115550000"


def test_random_draws_from_the_pool(asterisk, service, sipp):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, headers=[f"{OUT}: random"], talk_ms=500)
    assert final_response(phone) == 200
    assert sip_user(trunk.received("INVITE")[0].header("From")[0]) in ("0115550001", "0115550002")
    phone.wait(timeout=20)


def test_no_call_ref_header_is_an_untagged_call(asterisk, service, sipp):
    sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, headers=[f"{OUT}: 0215550199"], talk_ms=500)
    assert final_response(phone) == 200
    phone.wait(timeout=20)
    call = service.wait_state(only_call(service)["id"], "ended")
    assert call["call_ref"] == "" and call["reason"] == "completed"


def test_a_230_character_call_ref_lands_in_the_cdr_unchanged(asterisk, service, sipp):
    ref = ("A1.-_~:" * 40)[:230]
    sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, headers=[f"{OUT}: 0215550199", f"{REF}: {ref}"], talk_ms=500)
    assert final_response(phone) == 200
    phone.wait(timeout=20)
    call = service.wait_state(only_call(service)["id"], "ended")
    assert call["call_ref"] == ref
    assert_cdr_tagged(asterisk, call["id"], ref)


@pytest.mark.parametrize("callee,headers,code", [
    ("021555010", [f"{OUT}: 0215550199"], 484),            # callee one digit short
    ("02155501001", [f"{OUT}: 0215550199"], 484),          # one digit long
    ("0215550100", [f"{OUT}: Random"], 403),
    ("0215550100", [f"{OUT}: 021555019"], 403),
    ("0215550100", [f"{OUT}: 0215 550199"], 403),         # (trailing SIP whitespace is not part of a value)
    ("0215550100", [f"{OUT}: +27215550199"], 403),
    ("0215550100", [f"{OUT}: 0215550199", f"{REF}: bad ref"], 403),
    ("0215550100", [f"{OUT}: 0215550199", f"{REF}: ord/42"], 403),
])
def test_invalid_values_are_refused_and_nothing_is_dialled(asterisk, service, sipp, callee, headers, code):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, callee=callee, headers=headers)
    assert final_response(phone) == code
    time.sleep(0.3)
    assert trunk.received() == []
    call = only_call(service)
    assert call["state"] == "ended" and call["reason"] == "rejected" and call["origin"] == "webrtc"


def test_a_refusal_is_on_disk_before_the_phone_hears_it(asterisk, service, sipp):
    """SPEC §9: the refused attempt is written before the 403 goes out."""
    with service.journal_locked():           # the journal cannot commit for now
        phone = dial(sipp, headers=[f"{OUT}: Random"])
        time.sleep(2)
        assert not [m for m in phone.received() if m.status and m.status >= 300], \
            "the phone heard the refusal before it was journalled"
    assert final_response(phone) == 403
    call = only_call(service)
    assert call["reason"] == "rejected" and call["origin"] == "webrtc"


@pytest.mark.admin_configs
@pytest.mark.parametrize("trunk_code,phone_codes,reason", [
    (486, {486}, "callee_busy"), (480, {480, 408}, "callee_no_answer"),
    (503, {503}, "callee_unavailable"), (404, {503, 404}, "callee_unavailable"),
    (603, {486}, "rejected")])   # a customer's decline is not "your headers were refused" (403)
def test_callee_failures_reach_the_browser_as_sip_codes(asterisk, service, sipp, trunk_code, phone_codes, reason):
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=300, reject_code=trunk_code))
    phone = dial(sipp, headers=[f"{OUT}: 0215550199", f"{REF}: busy-1"])
    assert final_response(phone) in phone_codes
    call = service.wait_state(only_call(service)["id"], "ended")
    assert call["reason"] == reason
    assert call["sip_code"] == trunk_code, call      # SPEC §2: the callee leg decided
    assert_cdr_tagged(asterisk, call["id"], "busy-1", unanswered=True)


def test_unreachable_trunk_gives_the_browser_503(asterisk, make_service, sipp):
    """SPEC §4: unreachable → 503 (nothing answers the trunk INVITE at all)."""
    svc = make_service({"dial": {"callee_ring_timeout_s": 4}})
    dialled_at = time.monotonic()
    phone = dial(sipp, headers=[f"{OUT}: 0215550199"])     # no SIPp on the trunk's port
    assert final_response(phone, timeout=20) == 503
    assert svc.wait_state(only_call(svc)["id"], "ended")["reason"] == "callee_unavailable"
    assert asterisk.wait_idle() == ([], [])
    outlast_invite_retransmissions(sipp, TRUNK_PORT, dialled_at)


def test_callee_no_answer_after_ring_timeout(asterisk, service, sipp):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False))
    phone = dial(sipp, headers=[f"{OUT}: 0215550199"])
    assert final_response(phone, timeout=20) in (480, 408)
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "CANCEL")
    assert service.wait_state(only_call(service)["id"], "ended")["reason"] == "callee_no_answer"


def test_caller_hangs_up_while_the_callee_rings(asterisk, service, sipp):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False))
    phone = dial(sipp, headers=[f"{OUT}: 0215550199"], cancel_after_ms=1000)
    assert phone.wait(timeout=20) == 0
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "CANCEL")
    final = service.wait_state(only_call(service)["id"], "ended")
    assert (final["reason"], final["ended_by"]) == ("cancelled", "agent"), final


def test_callee_hangs_up_after_answer(asterisk, service, sipp):
    sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=1000))
    phone = dial(sipp, headers=[f"{OUT}: 0215550199"], wait_bye=True)
    assert phone.wait(timeout=20) == 0
    assert phone.received("BYE")
    final = service.wait_state(only_call(service)["id"], "ended")
    assert (final["reason"], final["ended_by"]) == ("completed", "callee"), final


def test_a_browser_call_can_be_cancelled_through_the_api(asterisk, service, sipp):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, headers=[f"{OUT}: 0215550199"], wait_bye=True)
    call = only_call(service)
    assert service.wait_state(call["id"], "connected")["state"] == "connected"
    ended = service.http.delete(f"/click2dial/calls/{call['id']}").json()
    assert (ended["reason"], ended["ended_by"]) == ("completed", "api"), ended   # the callee had answered
    assert phone.wait(timeout=20) == 0 and phone.received("BYE")
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "BYE")


def test_service_down_the_dialplan_rejects_with_503(asterisk, sipp):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, headers=[f"{OUT}: 0215550199"])
    assert final_response(phone) == 503
    assert trunk.received() == []
