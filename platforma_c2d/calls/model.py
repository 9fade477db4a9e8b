"""The Click2Dial call and its legs (SPEC §2, §3).

A call is a small explicit state machine::

    dialing_agent ──► dialing_callee ──► connected ──► ended
          │                  │                           ▲
          └──────────────────┴───────────────────────────┘

``ended`` is final and carries one ``Reason``. Every change goes through
``Call.advance`` / ``Call.end``, which refuse a transition that is not on the
diagram (``InvalidTransition``), so a repeated or late event can never move
a call backwards (field report C09).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone


class State(str, enum.Enum):
    """Call states of SPEC §2, in the order a call goes through them.

    The one list of the states: the contract, the OpenAPI document, the
    ``call`` command and the tests read it from here (iterating the enum
    gives this order). A call may skip a state, and ``ended`` may follow
    any of them (``_NEXT``).
    """

    DIALING_AGENT = "dialing_agent"
    DIALING_CALLEE = "dialing_callee"
    CONNECTED = "connected"
    ENDED = "ended"


class Reason(str, enum.Enum):
    """Final reasons of SPEC §2."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    AGENT_NO_ANSWER = "agent_no_answer"
    AGENT_BUSY = "agent_busy"
    AGENT_UNAVAILABLE = "agent_unavailable"
    CALLEE_NO_ANSWER = "callee_no_answer"
    CALLEE_BUSY = "callee_busy"
    CALLEE_UNAVAILABLE = "callee_unavailable"
    REJECTED = "rejected"
    FAILED = "failed"


class Origin(str, enum.Enum):
    """Where a call came from."""

    REST = "rest"
    WEBRTC = "webrtc"
    AGI = "agi"


class EndedBy(str, enum.Enum):
    """Who ended a call (SPEC §2 ``ended_by``)."""

    AGENT = "agent"
    CALLEE = "callee"
    API = "api"
    TIMEOUT = "timeout"
    SYSTEM = "system"


_NEXT = {
    State.DIALING_AGENT: {State.DIALING_CALLEE, State.ENDED},
    State.DIALING_CALLEE: {State.CONNECTED, State.ENDED},
    State.CONNECTED: {State.ENDED},
    State.ENDED: set(),
}


class InvalidTransition(Exception):
    """A state change that is not on the diagram (e.g. ``ended`` → anything)."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def new_call_id() -> str:
    """A new call id: 32 lowercase hex characters (UUID4)."""
    return uuid.uuid4().hex


@dataclass
class Leg:
    """One channel of a call. ``role`` is "agent" or "callee".

    ``channel_id`` is chosen by us before the channel exists. ``started``:
    StasisStart seen; ``up``: answered; ``gone``: destroyed or hung up.
    ``timed_out``: our ring timer expired; ``cause``: the hangup cause
    (Q.850) Asterisk reported, if any; ``far_cause``: for a leg dialled
    through a Local channel, the cause of the channel its ``Dial()`` reached,
    once followed (``calls.far_ends``); ``sip_code``: the leg's final SIP
    response code (ARI ``tech_cause``), if any; ``acted``: the answer was acted on
    (next leg dialled or bridge made) — once only; ``confirmed``: an
    external agent pressed 1 (``[dial] confirm_external_agent``).
    """

    role: str
    channel_id: str
    started: bool = False
    ringing: bool = False
    up: bool = False
    gone: bool = False
    timed_out: bool = False
    cause: int | None = None
    far_cause: int | None = None
    sip_code: int | None = None
    acted: bool = False
    confirmed: bool = False


@dataclass
class Call:
    """One Click2Dial call (SPEC §2 call resource), with its legs and bridge.

    Times are timezone-aware UTC datetimes. ``clid`` is the number actually
    presented to the callee; ``outbound_id`` is what was asked (``random``,
    a number, or "" for "the default").
    """

    id: str
    origin: Origin
    agent: str
    callee: str
    outbound_id: str
    clid: str
    call_ref: str
    agent_is_external: bool = False
    state: State = State.DIALING_AGENT
    reason: Reason | None = None
    created_at: datetime = field(default_factory=utcnow)
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    #: when anything the API shows last changed (state, answer, end)
    updated_at: datetime | None = None
    agent_leg: Leg | None = None
    callee_leg: Leg | None = None
    bridge_id: str | None = None
    #: reason decided before the last leg is gone (e.g. tone to the agent), and who decided it
    pending_reason: Reason | None = None
    pending_by: EndedBy | None = None
    #: who ended the call (SPEC §2 ``ended_by``), set with ``reason``
    ended_by: EndedBy | None = None
    #: the bridge ``bridge_id`` exists in Asterisk (made while the callee rang)
    bridge_made: bool = False
    token_name: str = ""
    #: role of the first leg that went away ("agent" or "callee"), if any
    first_gone: str | None = None
    #: Q.850 cause and final SIP response code of the leg that decided the
    #: outcome (SPEC §2), known once ended; None when no leg reported one
    cause: int | None = None
    sip_code: int | None = None
    #: a REST call Asterisk bridges itself (``[dial] bridging = "dialplan"``,
    #: ``calls.native``); ``continued``: its agent leg has left the app for the
    #: dialplan, which now dials the callee and plays the tone
    native: bool = False
    continued: bool = False

    @classmethod
    def from_row(cls, row) -> "Call":
        """The call of a journal row (``calls`` table, a dict), without its legs.

        Takes the fields the journal keeps: id, origin, numbers, call_ref,
        state, times, bridge id and token name. The reason of an ended row
        is set; an open row's ``reason`` column (an outcome noted before the
        end) is left to the caller. Legs are the caller's to rebuild: what
        they are depends on what Asterisk has now. Raises ``ValueError`` for
        an unknown origin or state.
        """
        from platforma_c2d.rules import is_extension

        call = cls(id=row["id"], origin=Origin(row["origin"]), agent=row["agent"], callee=row["callee"],
                   outbound_id=row["outbound_id"], clid=row["clid"], call_ref=row["call_ref"],
                   state=State(row["state"]), agent_is_external=not is_extension(row["agent"]),
                   token_name=row.get("token_name") or "", bridge_id=row.get("bridge_id"))
        call.created_at = parse_iso(row.get("created_at")) or call.created_at
        call.updated_at = parse_iso(row.get("updated_at")) or call.created_at
        call.answered_at = parse_iso(row.get("answered_at"))
        if call.state is State.ENDED:
            call.ended_at = parse_iso(row.get("ended_at"))
            call.reason = Reason(row["reason"]) if row.get("reason") else None
            call.ended_by = EndedBy(row["ended_by"]) if row.get("ended_by") else None
            call.cause, call.sip_code = row.get("cause"), row.get("sip_code")
        return call

    @property
    def ended(self) -> bool:
        """True once the call reached ``ended``."""
        return self.state is State.ENDED

    @property
    def duration_s(self) -> float:
        """Talk time in seconds: from the callee's answer to the end (0 if never answered)."""
        if self.answered_at is None:
            return 0.0
        end = self.ended_at or utcnow()
        return round(max(0.0, (end - self.answered_at).total_seconds()), 3)

    def legs(self) -> list[Leg]:
        """The legs that exist or were asked for, agent first."""
        return [leg for leg in (self.agent_leg, self.callee_leg) if leg is not None]

    def leg_by_channel(self, channel_id: str) -> Leg | None:
        """The leg whose channel id is ``channel_id``."""
        for leg in self.legs():
            if leg.channel_id == channel_id:
                return leg
        return None

    def advance(self, state: State) -> None:
        """Move to ``state``; raises ``InvalidTransition`` when not allowed."""
        if state not in _NEXT[self.state]:
            raise InvalidTransition(f"{self.state.value} -> {state.value}")
        self.state = state
        self.updated_at = utcnow()
        if state is State.CONNECTED:
            self.answered_at = self.updated_at

    def end(self, reason: Reason, by: EndedBy = EndedBy.SYSTEM) -> None:
        """Move to ``ended`` with ``reason``, ended by ``by``; raises ``InvalidTransition`` if already ended."""
        self.advance(State.ENDED)
        self.reason, self.ended_by = reason, by
        self.ended_at = self.updated_at

    def deciding_leg(self) -> Leg | None:
        """The leg that decided the outcome (SPEC §2 ``cause``/``sip_code``).

        An ``agent_*`` reason: the agent leg; ``callee_*`` or ``rejected``:
        the callee leg (the agent leg when there is none, e.g. a refused
        browser call); any other reason: the first leg that went away
        (None when the service itself ended the call, e.g. ``DELETE``).
        """
        value = self.reason.value if self.reason else ""
        if value.startswith("agent_"):
            return self.agent_leg
        if value.startswith("callee_") or self.reason is Reason.REJECTED:
            return self.callee_leg or self.agent_leg
        return {"agent": self.agent_leg, "callee": self.callee_leg}.get(self.first_gone or "")

    def stored_fields(self) -> dict:
        """The call's fields as the journal stores them (str values, ISO 8601 times)."""
        return {
            "id": self.id, "origin": self.origin.value, "agent": self.agent, "callee": self.callee,
            "outbound_id": self.outbound_id, "clid": self.clid, "call_ref": self.call_ref,
            "state": self.state.value, "reason": self.reason.value if self.reason else None,
            "ended_by": self.ended_by.value if self.ended_by else None,
            "created_at": iso(self.created_at), "answered_at": iso(self.answered_at),
            "ended_at": iso(self.ended_at), "updated_at": iso(self.updated_at or self.created_at),
            "duration_s": self.duration_s if self.ended else 0.0,
            "cause": self.cause, "sip_code": self.sip_code,
        }

    def to_dict(self) -> dict:
        """The call resource of SPEC §2 (JSON-ready; times ISO 8601 UTC); see :func:`call_resource`."""
        return call_resource(self.stored_fields())


#: The fields of the call resource, in the order of the JSON answer (the
#: OpenAPI document's ``Call`` schema, platforma_c2d.contract.CALL_FIELDS).
RESOURCE_FIELDS = ("id", "origin", "agent", "callee", "outbound_id", "clid", "call_ref", "state",
                   "reason", "ended_by", "created_at", "answered_at", "ended_at", "updated_at", "duration_s",
                   "cause", "sip_code")


def call_resource(stored) -> dict:
    """The call resource of SPEC §2 from a call's stored fields (a journal row or
    :meth:`Call.stored_fields`): the one place it is built, for the engine, the
    journal and the API.

    ``reason`` and ``ended_by`` show only once the call has ended (before that
    the journal may hold an outcome already known); ``duration_s`` of a
    connected call runs to now (seconds, milliseconds precision).
    """
    out = {k: stored.get(k) for k in RESOURCE_FIELDS}
    if out["state"] != State.ENDED.value:
        out["reason"] = out["ended_by"] = out["cause"] = out["sip_code"] = None
    if out["state"] == State.CONNECTED.value and out["answered_at"]:
        out["duration_s"] = round(max(0.0, (utcnow() - parse_iso(out["answered_at"])).total_seconds()), 3)
    out["updated_at"] = out["updated_at"] or out["created_at"]
    return out


def iso(t: datetime | None) -> str | None:
    """ISO 8601 UTC with milliseconds and a ``Z`` suffix, or None."""
    if t is None:
        return None
    # The year always has four digits (strftime writes 999 for 0999), so that
    # the stored strings sort as the times do.
    utc = t.astimezone(timezone.utc)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def parse_iso(ts: str | None) -> datetime | None:
    """The inverse of ``iso``: a timezone-aware UTC datetime, or None for None/""."""
    if not ts:
        return None
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
