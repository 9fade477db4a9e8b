"""How a call ended in the dialplan's ``Dial()``: an AGI call's reason and who ended it.

Pure functions of the channel variables Asterisk leaves at hang-up time
(``DIALSTATUS``, ``HANGUPCAUSE``, ``CHANNEL(hangupsource)``) and of the
call's journal row. The FastAGI hangup script (``agi/scripts.py``) and the
service following an AGI call's channel (``calls/agi_follower.py``) both
end calls by them, so an AGI call ends the same way whichever comes first
(SPEC §2, §6).
"""

from __future__ import annotations

from platforma_c2d.calls import causes
from platforma_c2d.calls.model import EndedBy, Reason

#: Dial()'s DIALSTATUS -> the call's final reason (SPEC section 2).
DIALSTATUS_REASONS = {
    "ANSWER": Reason.COMPLETED,
    "BUSY": Reason.CALLEE_BUSY,
    "NOANSWER": Reason.CALLEE_NO_ANSWER,
    "CONGESTION": Reason.CALLEE_UNAVAILABLE,
    "CHANUNAVAIL": Reason.CALLEE_UNAVAILABLE,
    "CANCEL": Reason.CANCELLED,
}


def reason_for_dial(dialstatus: str, hangupcause: str) -> Reason:
    """The final reason of an accepted AGI call, from the channel variables
    ``DIALSTATUS`` (left by ``Dial()``) and ``HANGUPCAUSE`` (Q.850, as a
    string) at hang-up time.

    See :data:`DIALSTATUS_REASONS`. No ``DIALSTATUS`` means the callee was
    never dialled: ``cancelled`` when the agent hung up (normal clearing),
    ``failed`` otherwise (the dialplan hung up without dialling). Any other
    status (``INVALIDARGS``, ``DONTCALL``, ...) is ``failed``.
    """
    if dialstatus in DIALSTATUS_REASONS:
        return DIALSTATUS_REASONS[dialstatus]
    if not dialstatus:
        return Reason.CANCELLED if hangupcause == str(causes.CAUSE_NORMAL) else Reason.FAILED
    return Reason.FAILED


def ended_by_for_dial(dialstatus: str, hangupcause: str, hangup_source: str, own_channel: str) -> EndedBy:
    """Who ended an AGI call (SPEC §2 ``ended_by``), from ``DIALSTATUS``,
    ``HANGUPCAUSE``, ``CHANNEL(hangupsource)`` (the name of the channel that
    hung up first; empty when Asterisk itself ended the bridge, e.g. Dial's
    ``S()`` limit) and the agent's own channel name (``agi_channel``).

    Answered: the side whose channel hung up, ``timeout`` when none did.
    Busy or unreachable: the callee's side; no answer: Dial's ring timeout;
    ``CANCEL`` or never dialled with normal clearing: the agent gave up;
    anything else: the system.
    """
    if dialstatus == "ANSWER":
        if not hangup_source:
            return EndedBy.TIMEOUT
        return EndedBy.AGENT if own_channel and hangup_source == own_channel else EndedBy.CALLEE
    if dialstatus in ("BUSY", "CONGESTION", "CHANUNAVAIL"):
        return EndedBy.CALLEE
    if dialstatus == "NOANSWER":
        return EndedBy.TIMEOUT
    if dialstatus == "CANCEL" or (not dialstatus and hangupcause == str(causes.CAUSE_NORMAL)):
        return EndedBy.AGENT
    return EndedBy.SYSTEM


def final_outcome(row: dict, dialstatus: str, hangupcause: str, hangup_source: str,
                  own_channel: str) -> tuple[Reason, EndedBy, bool]:
    """The reason and ``ended_by`` an open AGI call ends with, and whether
    they were noted before (a cancel through the API, kept in the row's
    ``reason``/``ended_by`` by ``Journal.mark_outcome``).

    ``row``: the call's journal row; the other arguments as for
    :func:`reason_for_dial` and :func:`ended_by_for_dial`. A noted cancel
    of an answered call is ``completed`` (SPEC §2 DELETE); a busy, no
    answer or unreachable outcome of ``Dial()`` stands over a noted one.
    Used by the hangup script and by the service following the channel.
    """
    noted = row.get("reason") if row.get("reason") in {r.value for r in Reason} else None
    if dialstatus in ("BUSY", "NOANSWER", "CONGESTION", "CHANUNAVAIL"):
        noted = None   # Dial() had its outcome before the cancel: it stands
    if noted:
        reason = Reason.COMPLETED if noted == Reason.CANCELLED.value and dialstatus == "ANSWER" else Reason(noted)
        return reason, (EndedBy(row["ended_by"]) if row.get("ended_by") else EndedBy.API), True
    return (reason_for_dial(dialstatus, hangupcause),
            ended_by_for_dial(dialstatus, hangupcause, hangup_source, own_channel), False)
