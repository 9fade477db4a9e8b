"""SPEC §5: CDR rows usable for billing as they come out of Asterisk — the
row of every leg through the trunk names the dialled number in ``dst``
(never ``s``) with the CLID in ``src``, and the agent's row says who the
agent is (``src``) and whom the call was for (``dst``).

Read from the CSV mapping (cdr_custom) on both config sets. Callee legs go
through the dialplan (``[dial] trunk_leg_context``, ADR 0014), and so does
the agent leg of a REST call (``[dial] agent_leg_context``); without the
marker of a context in the dialplan's globals, those legs are originated
straight and their rows say ``dst = s`` (tested here as the fallback).
"""

from __future__ import annotations

import pytest

from testbed.sipmessages import sip_user
from testbed.sipp import uac_scenario, uas_scenario

AGENT_PORT, TRUNK_PORT, PHONE_PORT = 5071, 5070, 5081
CALLEE, CLID = "0215550100", "0215550199"


def rows_by_leg(asterisk, call_id: str) -> dict[str, dict]:
    rows = asterisk.wait_cdr_rows(lambda r: r["c2d_call_id"] == call_id, count=2)
    by_leg = {row["c2d_leg"]: row for row in rows}
    assert set(by_leg) == {"agent", "callee"}, rows
    return by_leg


@pytest.fixture
def rest_call_rows(asterisk, service, sipp):
    """The CDR rows of one connected REST call, by ``c2d_leg``."""
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=200))
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, talk_ms=500))
    r = service.post_call({"agent": "1001", "callee": CALLEE, "outbound_id": CLID, "call_ref": "dst-1"})
    assert r.status_code == 201, r.text
    assert service.wait_state(r.json()["id"], "ended", timeout=15)["reason"] == "completed"
    return rows_by_leg(asterisk, r.json()["id"])


@pytest.fixture
def header_call_rows(asterisk, service, sipp):
    """The CDR rows of one connected header (WebRTC) call of phone 2001, by ``c2d_leg``."""
    return rows_by_leg(asterisk, completed_header_call(service, sipp, "dst-2"))


def completed_header_call(service, sipp, call_ref: str) -> str:
    """Phone 2001 calls CALLEE with the two headers, the trunk answers, the
    phone hangs up after 0.5 s; asserts the call completed, returns its id."""
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200))
    phone = sipp("phone", PHONE_PORT, uac_scenario(
        target=CALLEE, from_user="2001", talk_ms=500,
        headers=[f"X-Platforma-Outbound-ID: {CLID}", f"X-Platforma-Call-Ref: {call_ref}"]),
        uac_target="127.0.0.1:5060", calls=1)
    assert phone.wait(timeout=20) == 0
    [call] = service.http.get("/click2dial/calls").json()["calls"]
    assert service.wait_state(call["id"], "ended")["reason"] == "completed"
    return call["id"]


@pytest.mark.admin_configs
def test_rest_call_rows_name_the_parties_in_src(rest_call_rows):
    assert rest_call_rows["agent"]["src"] == "1001"
    assert rest_call_rows["callee"]["src"] == CLID


@pytest.mark.admin_configs
def test_rest_call_trunk_leg_row_names_the_dialled_number(rest_call_rows):
    assert rest_call_rows["callee"]["dst"] == CALLEE, rest_call_rows["callee"]


@pytest.mark.admin_configs
def test_rest_call_agent_row_names_the_callee(rest_call_rows):
    agent = rest_call_rows["agent"]
    assert (agent["src"], agent["dst"], agent["call_ref"]) == ("1001", CALLEE, "dst-1"), agent
    assert agent["channel"].startswith("Local/0215550100@c2d-agent-leg-"), agent
    assert agent["dstchannel"].startswith("PJSIP/1001-") and agent["disposition"] == "ANSWERED", agent


@pytest.mark.admin_configs
def test_header_call_browser_row_names_agent_and_callee(header_call_rows):
    browser = header_call_rows["agent"]
    assert (browser["src"], browser["dst"]) == ("2001", CALLEE), browser
    assert browser["channel"].startswith("PJSIP/2001-") and browser["dstchannel"].startswith("Local/0215550100@c2d-trunk-leg-")
    assert header_call_rows["callee"]["src"] == CLID


@pytest.mark.admin_configs
def test_header_call_trunk_leg_row_names_the_dialled_number(header_call_rows):
    assert header_call_rows["callee"]["dst"] == CALLEE, header_call_rows["callee"]


# --- [dial] trunk_leg_context: the callee leg through Local/<number>@c2d-trunk-leg/n ---------

THROUGH_DIALPLAN = {"dial": {"trunk_leg_context": "c2d-trunk-leg"}}     # the default, said here


def test_with_trunk_leg_context_empty_the_trunk_leg_row_says_s(asterisk, make_service, sipp):
    """The old way, still offered: originated straight to the trunk, dst = s."""
    service = make_service({"dial": {"trunk_leg_context": ""}})
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=200))
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, talk_ms=500))
    r = service.post_call({"agent": "1001", "callee": CALLEE, "outbound_id": CLID, "call_ref": "dst-5"})
    assert service.wait_state(r.json()["id"], "ended", timeout=15)["reason"] == "completed"
    callee = rows_by_leg(asterisk, r.json()["id"])["callee"]
    assert (callee["src"], callee["dst"], callee["channel"][:12]) == (CLID, "s", "PJSIP/trunk-"), callee


@pytest.mark.admin_configs
def test_without_the_merged_context_marker_calls_go_straight_to_the_trunk(asterisk, make_service, sipp):
    """A PBX whose dialplan lacks our C2D_TRUNK_LEG_CONTEXT global, or has it
    naming another context (ours not merged): the callee leg is dialled straight to the trunk — the call
    works, its trunk row says dst = s — and the log says why, instead of every
    leg failing on a Local channel into a context that is not there."""
    asterisk.cli("dialplan set global C2D_TRUNK_LEG_CONTEXT none")
    try:
        service = make_service()
        sipp("agent", AGENT_PORT, uas_scenario(ring_ms=200))
        sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, talk_ms=500))
        r = service.post_call({"agent": "1001", "callee": CALLEE, "outbound_id": CLID, "call_ref": "dst-7"})
        assert r.status_code == 201, r.text
        assert service.wait_state(r.json()["id"], "ended", timeout=15)["reason"] == "completed"
        callee = rows_by_leg(asterisk, r.json()["id"])["callee"]
        assert (callee["src"], callee["dst"], callee["channel"][:12]) == (CLID, "s", "PJSIP/trunk-"), callee
        assert "C2D_TRUNK_LEG_CONTEXT global is 'none'" in service.log_path.read_text(errors="replace")
    finally:
        asterisk.cli("dialplan set global C2D_TRUNK_LEG_CONTEXT c2d-trunk-leg")


def trunk_leg_rows(asterisk, call_id: str, timeout: float = 10.0) -> list[dict]:
    """The rows of ``call_id`` whose Party B is the trunk channel (the dialplan half's rows)."""
    rows = asterisk.wait_cdr_rows(lambda r: r["c2d_call_id"] == call_id and r["c2d_leg"] == "callee",
                                  timeout=timeout)
    # wait a moment for a second (wrong) row, if Asterisk were to write one
    return asterisk.wait_cdr_rows(lambda r: r["c2d_call_id"] == call_id and r["c2d_leg"] == "callee",
                                  count=len(rows) + 1, timeout=1.0)


@pytest.mark.admin_configs
def test_rest_call_through_the_dialplan_trunk_row_has_number_and_clid(asterisk, make_service, sipp):
    from tests.integration.test_identity import assert_trunk_names_only_callee_and_clid

    service = make_service(THROUGH_DIALPLAN)
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=200))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, talk_ms=2500))
    r = service.post_call({"agent": "1001", "callee": CALLEE, "outbound_id": CLID, "call_ref": "dst-3"})
    assert r.status_code == 201, r.text
    final = service.wait_state(r.json()["id"], "ended", timeout=20)
    assert (final["reason"], final["ended_by"]) == ("completed", "callee"), final
    assert final["duration_s"] >= 2, final
    [row] = trunk_leg_rows(asterisk, final["id"])
    assert (row["src"], row["dst"], row["call_ref"]) == (CLID, CALLEE, "dst-3"), row
    assert row["dstchannel"].startswith("PJSIP/trunk-") and row["disposition"] == "ANSWERED", row
    assert_trunk_names_only_callee_and_clid(trunk)       # ADR 0005 still holds


@pytest.mark.admin_configs
def test_header_call_through_the_dialplan_trunk_row_has_number_and_clid(asterisk, make_service, sipp):
    service = make_service(THROUGH_DIALPLAN)
    [row] = trunk_leg_rows(asterisk, completed_header_call(service, sipp, "dst-4"))
    assert (row["src"], row["dst"], row["call_ref"]) == (CLID, CALLEE, "dst-4"), row
    assert row["dstchannel"].startswith("PJSIP/trunk-"), row


def refused_rest_call(service, sipp, code: int, reason: str, call_ref: str) -> dict:
    """A REST call whose callee the trunk refuses with ``code``: asserts the call
    ended with ``reason`` and that SIP code; returns the ended call."""
    sipp("agent", AGENT_PORT, uas_scenario())
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, reject_code=code))
    r = service.post_call({"agent": "1001", "callee": CALLEE, "outbound_id": CLID, "call_ref": call_ref})
    final = service.wait_state(r.json()["id"], "ended", timeout=20)
    assert (final["reason"], final["sip_code"]) == (reason, code), final
    return final


@pytest.mark.parametrize("code,reason,disposition", [(486, "callee_busy", "BUSY"),
                                                     (503, "callee_unavailable", "CONGESTION")])
def test_refused_trunk_leg_through_the_dialplan_keeps_its_cause_and_sip_code(
        asterisk, make_service, sipp, code, reason, disposition):
    final = refused_rest_call(make_service(THROUGH_DIALPLAN), sipp, code, reason, f"dst-{code}")
    rows = trunk_leg_rows(asterisk, final["id"])
    if asterisk.unanswered_cdrs:       # the trunk never answered: a row only with unanswered=yes
        [row] = rows
        assert (row["src"], row["dst"], row["disposition"]) == (CLID, CALLEE, disposition), row


# --- [dial] agent_leg_context: a REST call's agent leg through Local/<callee>@c2d-agent-leg/n --

@pytest.mark.admin_configs
def test_the_agents_phone_is_shown_the_callee_after_the_answer_too(asterisk, service, sipp):
    """Its INVITE names the callee (pre-dial handler), and the connected-line
    update Dial()'s bridge makes of the agent's own number at the answer is
    turned back into the callee (CONNECTED_LINE_SEND_SUB) before it is sent."""
    agent = sipp("agent", AGENT_PORT, uas_scenario(ring_ms=200))
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, talk_ms=1500))
    r = service.post_call({"agent": "1001", "callee": CALLEE, "outbound_id": CLID, "call_ref": "dst-8"})
    assert r.status_code == 201, r.text
    service.wait_state(r.json()["id"], "connected")
    [phone] = [c for c in asterisk.channels() if c["name"].startswith("PJSIP/1001-")]
    assert phone["connected"]["number"] == CALLEE, phone
    assert service.wait_state(r.json()["id"], "ended", timeout=15)["reason"] == "completed"
    assert sip_user(agent.received("INVITE")[0].header("From")[0]) == CALLEE


@pytest.mark.admin_configs
def test_without_the_agent_leg_marker_the_agent_leg_goes_straight_to_the_phone(asterisk, make_service, sipp):
    """C2D_AGENT_LEG_CONTEXT unset (our [c2d-agent-leg] not merged): the agent
    leg is originated straight to the phone, the call works, the agent's row
    says dst = s, and the log says why."""
    asterisk.cli("dialplan set global C2D_AGENT_LEG_CONTEXT none")
    try:
        service = make_service()
        agent = sipp("agent", AGENT_PORT, uas_scenario(ring_ms=200))
        sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, talk_ms=500))
        r = service.post_call({"agent": "1001", "callee": CALLEE, "outbound_id": CLID, "call_ref": "dst-9"})
        assert r.status_code == 201, r.text
        assert service.wait_state(r.json()["id"], "ended", timeout=15)["reason"] == "completed"
        row = rows_by_leg(asterisk, r.json()["id"])["agent"]
        assert (row["src"], row["dst"], row["channel"][:11]) == ("1001", "s", "PJSIP/1001-"), row
        assert sip_user(agent.received("INVITE")[0].header("From")[0]) == CALLEE
        assert "C2D_AGENT_LEG_CONTEXT global is 'none'" in service.log_path.read_text(errors="replace")
    finally:
        asterisk.cli("dialplan set global C2D_AGENT_LEG_CONTEXT c2d-agent-leg")


# --- [dial] bridging = "dialplan": the callee dialled by [c2d-native-call] (ADR 0018) ------------

BRIDGED_IN_THE_DIALPLAN = {"dial": {"bridging": "dialplan"}}


@pytest.mark.admin_configs
def test_rest_call_bridged_in_the_dialplan_has_the_same_two_rows(asterisk, make_service, sipp):
    """The agent's row is its Local leg's ;2 as with Stasis bridging; the callee's
    is the Local channel's ;2 through which its ;1 dialled the trunk
    ([c2d-native-trunk]): src the CLID, dst the number, billed from the callee's answer."""
    service = make_service(BRIDGED_IN_THE_DIALPLAN)
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=200))
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, talk_ms=1500))
    r = service.post_call({"agent": "1001", "callee": CALLEE, "outbound_id": CLID, "call_ref": "dst-native"})
    assert r.status_code == 201, r.text
    assert service.wait_state(r.json()["id"], "ended", timeout=15)["reason"] == "completed"
    rows = asterisk.wait_cdr_rows(lambda row: row["c2d_call_id"] == r.json()["id"], count=2)
    assert len(rows) == 2, rows
    by_leg = rows_by_leg(asterisk, r.json()["id"])
    agent, callee = by_leg["agent"], by_leg["callee"]
    assert (agent["src"], agent["dst"], agent["call_ref"]) == ("1001", CALLEE, "dst-native"), agent
    assert agent["channel"].startswith("Local/0215550100@c2d-agent-leg-") and agent["channel"].endswith(";2")
    assert agent["dstchannel"].startswith("PJSIP/1001-"), agent
    assert (callee["src"], callee["dst"], callee["call_ref"]) == (CLID, CALLEE, "dst-native"), callee
    assert callee["channel"].startswith("Local/0215550100@c2d-native-trunk-") and callee["channel"].endswith(";2")
    assert callee["dstchannel"].startswith("PJSIP/trunk-") and callee["disposition"] == "ANSWERED", callee
    # Its billsec counts from the callee's answer: the ring time (the 200 ms here) is
    # test_native_context.py::test_the_callee_rows_billsec_counts_from_the_callees_answer's.


@pytest.mark.admin_configs
@pytest.mark.parametrize("code,reason,disposition", [(486, "callee_busy", "BUSY"),
                                                     (503, "callee_unavailable", "CONGESTION")])
def test_refused_callee_bridged_in_the_dialplan_has_its_row_and_sip_code(
        asterisk, make_service, sipp, code, reason, disposition):
    final = refused_rest_call(make_service(BRIDGED_IN_THE_DIALPLAN), sipp, code, reason, f"dst-n{code}")
    callee = rows_by_leg(asterisk, final["id"])["callee"]
    if disposition == "CONGESTION" and not asterisk.congestion_cdrs:
        disposition = "FAILED"          # Asterisk's default cdr.conf (the administrator's set)
    assert (callee["src"], callee["dst"], callee["disposition"]) == (CLID, CALLEE, disposition), callee
