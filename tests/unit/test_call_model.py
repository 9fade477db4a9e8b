"""The call state machine (SPEC §2 states and reasons) and hangup-cause mapping."""

from __future__ import annotations

from datetime import timedelta

import pytest

from platforma_c2d.calls import causes
from platforma_c2d.calls.model import Call, InvalidTransition, Leg, Origin, Reason, State


def new_call() -> Call:
    return Call(id="a" * 32, origin=Origin.REST, agent="1001", callee="0215550100",
                outbound_id="random", clid="0115550001", call_ref="r")


def test_a_call_starts_dialing_the_agent():
    assert new_call().state is State.DIALING_AGENT


def test_the_happy_path_follows_the_diagram():
    call = new_call()
    call.advance(State.DIALING_CALLEE)
    call.advance(State.CONNECTED)
    assert call.answered_at is not None
    call.end(Reason.COMPLETED)
    assert call.ended and call.reason is Reason.COMPLETED and call.ended_at >= call.answered_at


@pytest.mark.parametrize("state", [State.DIALING_AGENT, State.DIALING_CALLEE, State.CONNECTED])
def test_every_live_state_can_end(state):
    call = new_call()
    call.state = state
    call.end(Reason.CANCELLED)
    assert call.state is State.ENDED


@pytest.mark.parametrize("start,target", [
    (State.DIALING_AGENT, State.CONNECTED),       # the callee cannot answer before the agent
    (State.CONNECTED, State.DIALING_CALLEE),      # never backwards
    (State.DIALING_CALLEE, State.DIALING_AGENT),
])
def test_transitions_off_the_diagram_are_refused(start, target):
    call = new_call()
    call.state = start
    with pytest.raises(InvalidTransition):
        call.advance(target)


def test_an_ended_call_never_changes_again():
    call = new_call()
    call.end(Reason.AGENT_BUSY)
    with pytest.raises(InvalidTransition):
        call.end(Reason.COMPLETED)
    assert call.reason is Reason.AGENT_BUSY


def test_duration_is_talk_time_from_the_callee_answer():
    call = new_call()
    call.advance(State.DIALING_CALLEE)
    call.advance(State.CONNECTED)
    call.end(Reason.COMPLETED)
    call.ended_at = call.answered_at + timedelta(seconds=60.25)
    assert call.duration_s == 60.25


def test_an_unanswered_call_has_no_talk_time():
    call = new_call()
    call.advance(State.DIALING_CALLEE)
    call.end(Reason.CALLEE_BUSY)
    assert call.duration_s == 0.0 and call.to_dict()["answered_at"] is None


def test_call_resource_has_the_spec_fields_in_iso_utc():
    data = new_call().to_dict()
    assert list(data) == ["id", "origin", "agent", "callee", "outbound_id", "clid", "call_ref",
                          "state", "reason", "ended_by", "created_at", "answered_at", "ended_at", "updated_at",
                          "duration_s", "cause", "sip_code"]
    assert data["created_at"].endswith("Z") and data["reason"] is None


@pytest.mark.parametrize("role,cause,ringing,timed_out,reason", [
    ("agent", 17, True, False, Reason.AGENT_BUSY),
    ("agent", 19, True, False, Reason.AGENT_NO_ANSWER),
    ("agent", 0, True, True, Reason.AGENT_NO_ANSWER),      # C04: cause 0 after our timer
    ("agent", 0, True, False, Reason.AGENT_NO_ANSWER),
    ("agent", 20, False, False, Reason.AGENT_UNAVAILABLE),
    ("agent", 0, False, False, Reason.AGENT_UNAVAILABLE),
    ("agent", 17, True, True, Reason.AGENT_NO_ANSWER),     # our timer wins
    ("callee", 17, True, False, Reason.CALLEE_BUSY),
    ("callee", 18, True, False, Reason.CALLEE_NO_ANSWER),
    ("callee", 34, False, False, Reason.CALLEE_UNAVAILABLE),
    ("callee", 1, False, False, Reason.CALLEE_UNAVAILABLE),
    ("callee", 21, True, False, Reason.REJECTED),
    # Never rang (no 180, no 183): nothing answered the INVITE — unreachable,
    # whether our ring timer or Asterisk's SIP timeout (408, cause 18) came first.
    ("callee", 0, False, True, Reason.CALLEE_UNAVAILABLE),
    ("callee", 18, False, False, Reason.CALLEE_UNAVAILABLE),
    ("agent", 0, False, True, Reason.AGENT_UNAVAILABLE),
    ("callee", 19, False, False, Reason.CALLEE_NO_ANSWER),   # a 480 is an answer: no answer
])
def test_unanswered_leg_reasons(role, cause, ringing, timed_out, reason):
    leg = Leg(role, "c2d-x", ringing=ringing, timed_out=timed_out, cause=cause)
    assert causes.unanswered_reason(leg) is reason


@pytest.mark.parametrize("reason,cause", [
    (Reason.CALLEE_BUSY, 17), (Reason.CALLEE_NO_ANSWER, 19), (Reason.CALLEE_UNAVAILABLE, 34),
    (Reason.REJECTED, 17), (Reason.COMPLETED, 16)])
def test_browser_hangup_causes_give_the_spec_sip_codes(reason, cause):
    # chan_pjsip: 17 → 486, 19 → 480, 34 → 503 (SPEC §4); a customer's
    # decline (603) is 486 to the browser: 403 means its headers were refused
    assert causes.sip_cause_for(reason) == cause


def test_busy_callee_gives_the_agent_a_busy_tone():
    assert causes.tone_for(Reason.CALLEE_BUSY) == "tone:busy"
    assert causes.tone_for(Reason.CALLEE_NO_ANSWER) == "tone:congestion"
    assert causes.tone_for(Reason.COMPLETED) is None


def test_cause_and_sip_code_come_from_the_leg_that_decided_the_outcome():
    """SPEC §2: a busy callee's leg decides callee_busy, whatever the agent's leg said."""
    from platforma_c2d.calls.causes import note_outcome
    from platforma_c2d.calls.model import Leg, Reason

    call = new_call()
    call.agent_leg = Leg("agent", "a", up=True, cause=16)
    call.callee_leg = Leg("callee", "c", gone=True, cause=17, sip_code=486)
    call.first_gone = "callee"
    call.advance(State.DIALING_CALLEE)
    call.end(Reason.CALLEE_BUSY)
    note_outcome(call)
    data = call.to_dict()
    assert (data["cause"], data["sip_code"]) == (17, 486)
    open_call = new_call()
    open_call.cause, open_call.sip_code = 17, 486
    assert (open_call.to_dict()["cause"], open_call.to_dict()["sip_code"]) == (None, None)
