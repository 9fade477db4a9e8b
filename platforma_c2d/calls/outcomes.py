"""How a call goes on or ends: the engine's decisions, as pure functions.

No I/O and no clock: each function reads a :class:`~platforma_c2d.calls.model.Call`
(and what Asterisk has now) and returns what the engine is to do, so every
rule is tested by a table (``tests/unit/test_outcomes.py``), the way
``causes.unanswered_reason`` is. The engine carries the answer out.

* :func:`leg_gone` — a leg went: why the call ends, and who ended it
  (docs/architecture.md, *Reasons, and how they are decided*);
* :func:`resume_plan` — a call of an earlier run, rebuilt from the journal
  after a restart: how it goes on, or why it ends (SPEC §9).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from platforma_c2d.calls import causes
from platforma_c2d.calls.model import Call, EndedBy, Leg, Origin, Reason, State


@dataclass(frozen=True)
class Ending:
    """How a call ends: ``reason``, journal ``detail``, ended ``by``.

    ``tone``: the callee was not reached — a REST call's agent first hears
    the busy or congestion tone, a browser gets the matching SIP answer
    (``CallEngine._callee_failed``); otherwise the call is torn down at once.
    """

    reason: Reason
    detail: str
    by: EndedBy = EndedBy.SYSTEM
    tone: bool = False


def leg_gone(call: Call, leg: Leg, carrier: str = "") -> Ending:
    """Why ``call`` ends now that ``leg`` is gone (``leg.cause`` and ``leg.up`` as last known).

    ``carrier``: the journal detail of a carrier's refusal of that leg
    (SIP 5xx, ``CallEngine._carrier_refusal``), "" when there was none.
    Rules: an outcome known before (the tone) stands, with who decided it;
    a leg that was up and that Asterisk cut itself (a cause of
    :data:`causes.CUT_BY_ASTERISK`, its rtp_timeout) ends the call
    ``failed`` by the ``system``, saying why; otherwise the call is ended by the leg's side, or ``timeout`` when our
    ring timer hung the leg up. An agent leg: a browser's → ``completed``
    once connected, else ``cancelled``; a REST agent's unanswered →
    :func:`causes.unanswered_reason`; answered but gone before the callee
    answered (while confirming, or while the callee rang) → ``cancelled``;
    else ``completed``. A callee leg: answered → ``completed``; unanswered
    → :func:`causes.unanswered_reason`, through the tone.
    """
    if call.pending_reason is not None:
        return Ending(call.pending_reason, f"{leg.role} leg ended", call.pending_by or EndedBy.SYSTEM)
    if leg.up and leg.cause in causes.CUT_BY_ASTERISK:
        return Ending(Reason.FAILED, f"{leg.role} leg cut by Asterisk (cause {leg.cause}): "
                                     f"{causes.CUT_BY_ASTERISK[leg.cause]}", EndedBy.SYSTEM)
    by = EndedBy.TIMEOUT if leg.timed_out else EndedBy(leg.role)
    if leg.role == "agent":
        if call.origin is not Origin.REST:
            reason = Reason.COMPLETED if call.state is State.CONNECTED else Reason.CANCELLED
        elif not leg.up:
            reason = causes.unanswered_reason(leg)
        elif call.state in (State.DIALING_AGENT, State.DIALING_CALLEE):
            reason = Reason.CANCELLED   # the agent gave up before the callee answered
        else:
            reason = Reason.COMPLETED
        return Ending(reason, carrier or f"agent leg ended (cause {leg.cause})", by)
    if leg.up:
        return Ending(Reason.COMPLETED, f"callee leg ended (cause {leg.cause})", by)
    return Ending(causes.unanswered_reason(leg),
                  carrier or f"callee leg ended unanswered (cause {leg.cause})", by, tone=True)


@dataclass(frozen=True)
class ResumePlan:
    """What becomes of a call taken back after a restart.

    ``end``: it ends so (None: it goes on); ``adopted``: it is taken back
    as it stands (logged so); ``agent_answered``: the agent's answer is
    recorded now (``dialing_agent`` → ``dialing_callee``: the callee was
    already dialled); ``max_duration``: a connected call goes on, under its
    maximum duration; ``ring``: the legs whose ring timers start again.
    """

    end: Ending | None = None
    adopted: bool = True
    agent_answered: bool = False
    max_duration: bool = False
    ring: tuple[Leg, ...] = field(default=())


def resume_plan(call: Call, bridges: dict | set) -> ResumePlan:
    """How ``call`` (rebuilt from the journal by ``recovery.call_from_row``) goes on.

    ``bridges``: the ids of Asterisk's bridges now. Rules (SPEC §9):
    an outcome known before the restart (the tone) stands; a call whose
    legs are all gone ends ``completed`` if it was connected, ``failed``
    otherwise; a connected call missing a leg or its bridge ends
    ``completed``, else goes on under its maximum duration; the customer is
    never dialled twice: an agent who answered with no callee leg yet, or a
    callee leg gone while we were away, ends ``failed``; a ringing callee
    whose agent (or browser) is gone is hung up, ``cancelled``; otherwise
    the call goes on with its ring timers started again — never for a
    browser's own leg (it is the caller, not ringing).
    """
    legs = call.legs()
    if call.pending_reason is not None:
        return ResumePlan(Ending(call.pending_reason, "taken back after a restart during the tone",
                                 call.pending_by or EndedBy.SYSTEM), adopted=False)
    if not legs or all(leg.gone for leg in legs):
        reason = Reason.COMPLETED if call.state is State.CONNECTED else Reason.FAILED
        return ResumePlan(Ending(reason, "found after a restart with no channel left"), adopted=False)
    if call.state is State.CONNECTED:
        if any(leg.gone for leg in legs) or call.bridge_id not in bridges:
            return ResumePlan(Ending(Reason.COMPLETED, "a leg ended while the service was away"))
        return ResumePlan(max_duration=True)
    state, agent, callee = call.state, call.agent_leg, call.callee_leg
    answered = False
    if state is State.DIALING_AGENT and agent is not None and agent.up and agent.started:
        # The agent had answered (it is in the app) but the record of that
        # never reached the disk; the callee may have been dialled already.
        if callee is None or callee.gone:
            return ResumePlan(Ending(Reason.FAILED, "the agent had answered before the restart"))
        answered, state = True, State.DIALING_CALLEE
    elif state is State.DIALING_AGENT and callee is not None and not callee.gone:
        # A callee leg is there, so the agent had answered, and has hung up
        # since (its leg is gone): the record of the answer never reached the
        # disk (a store slower to commit than Asterisk is to dial).
        answered, state = True, State.DIALING_CALLEE
    if state is State.DIALING_CALLEE and (callee is None or callee.gone):
        # Whatever happened to the callee happened while we were away (it
        # may even have answered): never dial the customer twice.
        return ResumePlan(Ending(Reason.FAILED, "the callee leg ended while the service was away"))
    if state is State.DIALING_CALLEE and (agent is None or agent.gone):
        # The agent (or the browser) hung up while we were away: the
        # customer must stop ringing now (SPEC §3.4).
        return ResumePlan(Ending(Reason.CANCELLED, "the agent leg ended while the service was away"),
                          agent_answered=answered)
    ring = tuple(leg for leg in legs
                 if not (leg.role == "agent" and call.origin is not Origin.REST)
                 and not leg.gone and not leg.up)
    return ResumePlan(agent_answered=answered, ring=ring)
