"""The engine's decisions as tables: why a call ends when a leg goes, and how a call
taken back after a restart goes on (calls/outcomes.py; docs/architecture.md,
*Reasons, and how they are decided*; SPEC §9: the customer is never dialled twice)."""

from __future__ import annotations

import pytest

from platforma_c2d.calls.model import Call, EndedBy, Leg, Origin, Reason, State
from platforma_c2d.calls.outcomes import Ending, leg_gone, resume_plan

CALL_ID = "a" * 32
BRIDGE = f"c2d-{CALL_ID}"


def call_in(state: State, origin: Origin = Origin.REST, *, agent: Leg | None = None,
            callee: Leg | None = None, bridge: str | None = None) -> Call:
    call = Call(id=CALL_ID, origin=origin, agent="1001", callee="0215550100",
                outbound_id="0215550199", clid="0215550199", call_ref="r")
    call.state, call.agent_leg, call.callee_leg, call.bridge_id = state, agent, callee, bridge
    return call


def leg(role: str, **flags) -> Leg:
    return Leg(role, f"c2d-{CALL_ID}-{role}", **flags)


# ----------------------------------------------------------------------
# a leg goes: why the call ends, and who ended it
# ----------------------------------------------------------------------
REST, WEBRTC = Origin.REST, Origin.WEBRTC
DA, DC, CO = State.DIALING_AGENT, State.DIALING_CALLEE, State.CONNECTED


@pytest.mark.parametrize("origin,state,role,flags,reason,by,tone", [
    # a REST agent's leg
    (REST, DA, "agent", dict(cause=17, ringing=True), Reason.AGENT_BUSY, EndedBy.AGENT, False),
    (REST, DA, "agent", dict(cause=0, ringing=True, timed_out=True), Reason.AGENT_NO_ANSWER,
     EndedBy.TIMEOUT, False),                                   # C04: our ring timer
    (REST, DA, "agent", dict(cause=20), Reason.AGENT_UNAVAILABLE, EndedBy.AGENT, False),
    (REST, DA, "agent", dict(up=True, cause=16), Reason.CANCELLED, EndedBy.AGENT, False),  # while confirming
    (REST, DC, "agent", dict(up=True, cause=16), Reason.CANCELLED, EndedBy.AGENT, False),  # callee rang
    (REST, CO, "agent", dict(up=True, cause=16), Reason.COMPLETED, EndedBy.AGENT, False),
    # a browser's own leg: it hung up
    (WEBRTC, DC, "agent", dict(up=True, cause=16), Reason.CANCELLED, EndedBy.AGENT, False),
    (WEBRTC, CO, "agent", dict(up=True, cause=16), Reason.COMPLETED, EndedBy.AGENT, False),
    # the callee's leg
    (REST, CO, "callee", dict(up=True, cause=16), Reason.COMPLETED, EndedBy.CALLEE, False),
    (REST, DC, "callee", dict(cause=17, ringing=True), Reason.CALLEE_BUSY, EndedBy.CALLEE, True),
    (REST, DC, "callee", dict(cause=21, ringing=True), Reason.REJECTED, EndedBy.CALLEE, True),
    (REST, DC, "callee", dict(cause=0, ringing=True, timed_out=True), Reason.CALLEE_NO_ANSWER,
     EndedBy.TIMEOUT, True),
    (WEBRTC, DC, "callee", dict(cause=34), Reason.CALLEE_UNAVAILABLE, EndedBy.CALLEE, True),
    # a leg that was up, cut by Asterisk itself (its rtp_timeout: cause 44)
    (REST, CO, "callee", dict(up=True, cause=44), Reason.FAILED, EndedBy.SYSTEM, False),
    (REST, CO, "agent", dict(up=True, cause=44), Reason.FAILED, EndedBy.SYSTEM, False),
    (WEBRTC, CO, "agent", dict(up=True, cause=44), Reason.FAILED, EndedBy.SYSTEM, False),
])
def test_why_a_call_ends_when_a_leg_goes(origin, state, role, flags, reason, by, tone):
    gone = leg(role, gone=True, **flags)
    call = call_in(state, origin, **{role: gone})
    ending = leg_gone(call, gone)
    assert (ending.reason, ending.by, ending.tone) == (reason, by, tone)


def test_a_known_outcome_stands_with_who_decided_it_when_a_leg_goes():
    call = call_in(DC, agent=leg("agent", up=True), callee=leg("callee", gone=True, cause=17))
    call.pending_reason, call.pending_by = Reason.CALLEE_BUSY, EndedBy.CALLEE
    assert leg_gone(call, call.agent_leg) == Ending(Reason.CALLEE_BUSY, "agent leg ended", EndedBy.CALLEE)


def test_a_leg_cut_by_asterisks_rtp_timeout_says_so_in_the_journal():
    callee = leg("callee", gone=True, up=True, cause=44)
    detail = leg_gone(call_in(CO, callee=callee), callee).detail
    assert detail.startswith("callee leg cut by Asterisk (cause 44): no RTP") and "rtp_timeout" in detail


def test_the_carriers_refusal_is_the_journal_detail_of_an_unanswered_leg():
    callee = leg("callee", gone=True, cause=34, sip_code=503)
    ending = leg_gone(call_in(DC, callee=callee), callee, "callee leg refused by the carrier (SIP 503)")
    assert ending.detail == "callee leg refused by the carrier (SIP 503)"
    assert leg_gone(call_in(DC, callee=callee), callee).detail == "callee leg ended unanswered (cause 34)"


# ----------------------------------------------------------------------
# a call of an earlier run, taken back after a restart
# ----------------------------------------------------------------------
def up(role):
    return leg(role, started=True, up=True, ringing=True)


def ringing(role):
    return leg(role, ringing=True)


def gone(role):
    return leg(role, gone=True)


@pytest.mark.parametrize("name,call,bridges,end,adopted,answered,max_duration,ring", [
    ("all legs gone, was connected", call_in(CO, agent=gone("agent"), callee=gone("callee"), bridge=BRIDGE),
     {BRIDGE}, (Reason.COMPLETED, "found after a restart with no channel left"), False, False, False, ()),
    ("all legs gone, was dialling", call_in(DA, agent=gone("agent")),
     set(), (Reason.FAILED, "found after a restart with no channel left"), False, False, False, ()),
    ("connected, both legs and the bridge there", call_in(CO, agent=up("agent"), callee=up("callee"),
                                                          bridge=BRIDGE),
     {BRIDGE}, None, True, False, True, ()),
    ("connected, a leg gone", call_in(CO, agent=up("agent"), callee=gone("callee"), bridge=BRIDGE),
     {BRIDGE}, (Reason.COMPLETED, "a leg ended while the service was away"), True, False, False, ()),
    ("connected, the bridge gone", call_in(CO, agent=up("agent"), callee=up("callee"), bridge=BRIDGE),
     set(), (Reason.COMPLETED, "a leg ended while the service was away"), True, False, False, ()),
    ("agent answered unrecorded, no callee leg", call_in(DA, agent=up("agent")),
     set(), (Reason.FAILED, "the agent had answered before the restart"), True, False, False, ()),
    ("agent answered unrecorded, callee ringing", call_in(DA, agent=up("agent"), callee=ringing("callee")),
     set(), None, True, True, False, ("callee",)),
    ("agent answered unrecorded, then hung up while the callee rang",
     call_in(DA, agent=gone("agent"), callee=ringing("callee")),
     set(), (Reason.CANCELLED, "the agent leg ended while the service was away"), True, True, False, ()),
    ("callee leg gone while away", call_in(DC, agent=up("agent"), callee=gone("callee")),
     set(), (Reason.FAILED, "the callee leg ended while the service was away"), True, False, False, ()),
    ("agent gone while the callee rang", call_in(DC, agent=gone("agent"), callee=ringing("callee")),
     set(), (Reason.CANCELLED, "the agent leg ended while the service was away"), True, False, False, ()),
    ("agent still ringing", call_in(DA, agent=ringing("agent")),
     set(), None, True, False, False, ("agent",)),
    ("browser caller waits for the callee", call_in(DC, WEBRTC, agent=leg("agent", started=True),
                                                    callee=ringing("callee")),
     set(), None, True, False, False, ("callee",)),
])
def test_how_a_call_taken_back_after_a_restart_goes_on(name, call, bridges, end, adopted, answered,
                                                      max_duration, ring):
    plan = resume_plan(call, bridges)
    assert ((plan.end.reason, plan.end.detail) if plan.end else None) == end, name
    assert (plan.adopted, plan.agent_answered, plan.max_duration) == (adopted, answered, max_duration), name
    assert tuple(leg.role for leg in plan.ring) == ring, name


def test_a_known_outcome_stands_after_a_restart():
    call = call_in(DC, agent=up("agent"), callee=gone("callee"))
    call.pending_reason, call.pending_by = Reason.CALLEE_BUSY, EndedBy.CALLEE
    plan = resume_plan(call, set())
    assert plan.end == Ending(Reason.CALLEE_BUSY, "taken back after a restart during the tone", EndedBy.CALLEE)
    assert not plan.adopted
