"""Hangup causes (Q.850, as Asterisk reports them) → Click2Dial reasons, and
reasons → the cause that gives a browser the right SIP response (SPEC §2, §4).

Asterisk does not always report a useful cause: a created+dialled channel
that was never answered can be destroyed with cause 0 "Unknown" (field
report C04). So "no answer" is decided from our own ring timer first, and
from the cause only when the timer did not fire.
"""

from __future__ import annotations

from platforma_c2d.calls.model import Leg, Reason

BUSY = {17}                                  # USER_BUSY (486, 600)
NO_ANSWER = {18, 19}                         # NO_USER_RESPONSE (408), NO_ANSWER (480)
NO_USER_RESPONSE = 18                        # 408, also Asterisk's own INVITE timeout
REJECTED = {21}                              # CALL_REJECTED (403, 603)
UNAVAILABLE = {1, 2, 3, 20, 22, 27, 28, 29, 31, 34, 38, 41, 42, 44, 47, 50, 58, 65, 66, 79,
               88, 102, 111, 127}            # unallocated, no route, absent, out of order, congestion...

#: Causes with which Asterisk itself cuts a leg that was up, and why (SPEC §3.9
#: promises calls of any length; an administrator's endpoint can still cut
#: them): the call then ends ``failed``, by the ``system``, saying so.
CUT_BY_ASTERISK = {
    44: "no RTP from its far end within the endpoint's rtp_timeout (or rtp_timeout_hold) "
        "in Asterisk's pjsip.conf",   # REQUESTED_CHAN_UNAVAIL, res_pjsip_sdp_rtp
}

# Q.850 causes used to hang up a browser leg; chan_pjsip turns them into
# 486 / 480 / 503 / 403 / 484 / 408 (SPEC §4).
CAUSE_BUSY = 17
CAUSE_NO_ANSWER = 19
CAUSE_NO_USER_RESPONSE = 18
CAUSE_CONGESTION = 34
CAUSE_REJECTED = 21
CAUSE_INVALID_NUMBER = 28
CAUSE_NORMAL = 16

_BY_ROLE = {
    "agent": (Reason.AGENT_BUSY, Reason.AGENT_NO_ANSWER, Reason.AGENT_UNAVAILABLE),
    "callee": (Reason.CALLEE_BUSY, Reason.CALLEE_NO_ANSWER, Reason.CALLEE_UNAVAILABLE),
}


def unanswered_reason(leg: Leg) -> Reason:
    """Why a leg that was never answered ended.

    A leg that rang (180, or 183 early media) and was not answered — our
    ring timer (C04), or 408/480 — is "no answer". A leg that never rang
    is not: a ring timer or a 408 (Asterisk's own SIP timeout: nothing
    answered the INVITE at all) there means the far end is unreachable
    (SPEC §3.5, §4: 503 to a browser). Then busy, 480, rejected and
    unavailable by cause; a 5xx from the far end (a carrier refusing the call,
    SPEC §3.8) is unavailable whatever the cause; an unknown cause counts as no answer after
    ringing, as unavailable before.
    """
    busy, no_answer, unavailable = _BY_ROLE[leg.role]
    if leg.sip_code and 500 <= leg.sip_code < 600 and not leg.timed_out:
        return unavailable   # the carrier refused it (SPEC §3.8): never busy or no answer
    if leg.timed_out:
        return no_answer if leg.ringing else unavailable
    cause = leg.cause or 0
    if cause in BUSY:
        return busy
    if cause == NO_USER_RESPONSE and not leg.ringing:
        return unavailable
    if cause in NO_ANSWER:
        return no_answer
    if cause in REJECTED:
        return Reason.REJECTED
    if cause in UNAVAILABLE:
        return unavailable
    return no_answer if leg.ringing else unavailable


def sip_cause_for(reason: Reason) -> int:
    """The hangup cause that tells a calling browser why its call failed (SPEC §4).

    callee_busy → 17 (486); callee_no_answer → 19 (480); callee_unavailable
    → 34 (503); rejected (the customer declined, 603 from the trunk) → 17
    (486: SPEC §4 keeps 403 for refused headers, and a SIP.js client must
    not read a customer's decline as its headers refused); failed → 34
    (503); anything else → 16.
    """
    return {
        Reason.CALLEE_BUSY: CAUSE_BUSY,
        Reason.CALLEE_NO_ANSWER: CAUSE_NO_ANSWER,
        Reason.CALLEE_UNAVAILABLE: CAUSE_CONGESTION,
        Reason.REJECTED: CAUSE_BUSY,
        Reason.FAILED: CAUSE_CONGESTION,
    }.get(reason, CAUSE_NORMAL)


def tone_for(reason: Reason) -> str | None:
    """The tone the agent hears before hang-up when the callee leg failed (SPEC §3.5)."""
    return {
        Reason.CALLEE_BUSY: "tone:busy",
        Reason.CALLEE_NO_ANSWER: "tone:congestion",
        Reason.CALLEE_UNAVAILABLE: "tone:congestion",
        Reason.REJECTED: "tone:congestion",
    }.get(reason)


def note_outcome(call) -> None:
    """Copy the hangup cause and SIP code of the leg that decided an ended
    call's outcome (:meth:`Call.deciding_leg`) onto the call (SPEC §2)."""
    leg = call.deciding_leg()
    if leg is None:
        return
    if leg.timed_out:
        # Our ring timer hung the leg up with "no answer": the far end gave
        # no final answer, and what Asterisk reports afterwards is its own
        # rendering of our hangup.
        call.cause, call.sip_code = CAUSE_NO_ANSWER, None
        return
    call.cause = leg.cause if leg.cause else None
    call.sip_code = leg.sip_code if leg.sip_code and 100 <= leg.sip_code <= 699 else None
