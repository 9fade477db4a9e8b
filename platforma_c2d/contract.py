"""The HTTP API's contract, declared once (SPEC §2).

Every fact an integrator relies on lives here, as data: the API's version,
the headers, the limits, the formats of the fields, the error catalogue
(ids, statuses, meanings), the enums of the call resource and what each
value means, the fields of the call resource and the query parameters of
the list. The validators (``http/``), the error classes
(``calls/errors.py``), the OpenAPI document (``http/openapi.py``) and the
tests read them from here; docs/api.md describes them in words.

No I/O, no Flask. JSON Schema fragments here follow OpenAPI 3.1 (JSON
Schema 2020-12): a nullable value is ``"type": [T, "null"]``, and patterns
are ECMA-262 regular expressions anchored ``^...$`` (without the ``m``
flag ``$`` matches only at the very end, so a trailing newline is refused
as SPEC §1 asks; the server itself checks with ``re.fullmatch`` in
:mod:`platforma_c2d.rules`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from platforma_c2d import rules
from platforma_c2d.calls.model import EndedBy, Origin, Reason, State

#: The version of this HTTP API (semantic versioning; CHANGELOG.md). Sent in
#: ``X-Platforma-Api-Version`` on every answer and in the OpenAPI document.
API_VERSION = "1.0.0"

PREFIX = "/click2dial"

# --------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------

API_VERSION_HEADER = "X-Platforma-Api-Version"
REQUEST_ID_HEADER = "X-Request-Id"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: ``true`` on every answer of ``platforma-c2d sandbox`` (a simulated PBX).
SANDBOX_HEADER = "X-Platforma-Sandbox"

#: A client's X-Request-Id is used when it matches this (letters, digits and
#: ``. - _ ~ : / + =``, at most 128 characters); otherwise the service makes one.
REQUEST_ID_PATTERN = "^[A-Za-z0-9._~:/+=-]{1,128}$"

# --------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------

MAX_BODY_BYTES = 64 * 1024          # bytes of a request body
PAGE_DEFAULT, PAGE_MAX = 50, 200    # calls per page of the list
TOTAL_COUNT_MAX = 10_000            # the list counts matching calls up to this many
IDEMPOTENCY_KEY_MAX = 200           # characters
IDEMPOTENCY_KEY_PATTERN = "^[ -~]{1,200}$"

# --------------------------------------------------------------------------
# Field formats (SPEC §1), from the patterns of platforma_c2d.rules
# --------------------------------------------------------------------------


def _anchored(*patterns: re.Pattern[str]) -> str:
    return "^(?:" + "|".join(p.pattern for p in patterns) + ")$"


AGENT_PATTERN = _anchored(rules.EXTENSION_RE, rules.CALLEE_NUMBER_RE)
CALLEE_PATTERN = _anchored(rules.CALLEE_NUMBER_RE)
OUTBOUND_ID_PATTERN = "^(?:" + rules.RANDOM + "|" + rules.CLID_NUMBER_RE.pattern + ")$"
CALL_REF_PATTERN = "^[A-Za-z0-9._~:-]*$"
CALL_ID_PATTERN = "^[0-9a-f]{32}$"
ERROR_ID_PATTERN = "^[a-z0-9]+(?:-[a-z0-9]+)*$"

# --------------------------------------------------------------------------
# The error catalogue
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorSpec:
    """One error a client may see: ``id`` (stable, kebab-case), HTTP ``status``
    and what it means, in the API's terms."""

    id: str
    status: int
    meaning: str


ERRORS: dict[str, ErrorSpec] = {e.id: e for e in (
    ErrorSpec("invalid-request", 400, "the body, a query parameter or a header breaks the rules; "
                                      "`details.fields` maps every bad one to what is wrong and the "
                                      "accepted formats"),
    ErrorSpec("invalid-json", 400, "the body is declared JSON but is not JSON: it does not parse, is not "
                                   "UTF-8 or holds NaN or Infinity (`details.fields.body`)"),
    ErrorSpec("unauthorized", 401, "no bearer token, or an unknown one"),
    ErrorSpec("forbidden", 403, "the token may not place calls for this agent"),
    ErrorSpec("clid-not-allowed", 403, "the outbound_id is not one of the caller IDs this PBX may present"),
    ErrorSpec("destination-not-allowed", 403, "calls to this callee (or external agent) number are not "
                                              "allowed on this PBX"),
    ErrorSpec("host-not-allowed", 403, "authentication is off (a loopback-only service) and the request's "
                                       "Host or Origin is not a loopback address: a web page's request "
                                       "through DNS rebinding is refused"),
    ErrorSpec("no-such-call", 404, "no call with this id"),
    ErrorSpec("not-found", 404, "no such route"),
    ErrorSpec("method-not-allowed", 405, "the route does not take this method; `Allow` lists those it takes"),
    ErrorSpec("agent-busy", 409, "the agent already has the maximum number of active calls (the service's "
                                 "own limit; not the call reason `agent_busy`, which says the agent's "
                                 "phone answered busy)"),
    ErrorSpec("not-cancellable", 409, "the call cannot be hung up from here: a FastAGI call journalled "
                                      "without its channel (by an older version)"),
    ErrorSpec("request-too-large", 413, f"the body is larger than {MAX_BODY_BYTES // 1024} KiB"),
    ErrorSpec("unsupported-media-type", 415, "the body is not declared JSON (Content-Type: application/json)"),
    ErrorSpec("idempotency-key-reused", 422, "the Idempotency-Key was used before with a different body"),
    ErrorSpec("too-many-calls", 429, "the service's cap of calls up at once is reached, for the whole "
                                     "service or for this token (`details.scope`: `service` or `token`); "
                                     "retry after `Retry-After` seconds"),
    ErrorSpec("rate-limited", 429, "too many writes (POST, DELETE) or reads (GET) for this token, counted "
                                   "apart, or too many failed authentications from this address "
                                   "(`details.kind`); retry after `Retry-After` seconds"),
    ErrorSpec("internal-error", 500, "a fault of the service; the details are in its log only"),
    ErrorSpec("asterisk-unavailable", 503, "the PBX (ARI) is not connected or did not answer in time, or the "
                                           "call journal is not keeping up; nothing was changed; retry after "
                                           "`Retry-After` seconds"),
    ErrorSpec("too-many-streams", 503, "`[webhooks] max_streams` event streams are open already, or "
                                       "`max_streams_per_token` of this token's (`details.scope`); try again "
                                       "later"),
)}

#: Seconds a client is asked to wait (``Retry-After``) after a 503.
RETRY_AFTER_503_S = 2

# --------------------------------------------------------------------------
# Enums of the call resource, each value with its meaning
# --------------------------------------------------------------------------

STATE_MEANINGS = {
    State.DIALING_AGENT: "the agent's phone is ringing",
    State.DIALING_CALLEE: "the agent answered (or a browser phone called); the callee is ringing",
    State.CONNECTED: "the callee answered; agent and callee are bridged",
    State.ENDED: "the call is over; `reason` says why, `ended_by` who ended it",
}
REASON_MEANINGS = {
    Reason.COMPLETED: "the callee answered, and the call ended after that (by anyone, DELETE included)",
    Reason.CANCELLED: "ended before the callee answered, by DELETE or by the agent hanging up",
    Reason.AGENT_NO_ANSWER: "the agent's phone did not answer in time",
    Reason.AGENT_BUSY: "the agent's phone answered busy (not the error id `agent-busy`)",
    Reason.AGENT_UNAVAILABLE: "the agent's phone could not be reached",
    Reason.CALLEE_NO_ANSWER: "the callee did not answer in time",
    Reason.CALLEE_BUSY: "the callee's line was busy",
    Reason.CALLEE_UNAVAILABLE: "the callee could not be reached (network, number or trunk)",
    Reason.REJECTED: "the call was refused (a browser phone's call that broke the rules, or the network "
                     "rejected it)",
    Reason.FAILED: "the service could not carry the call on (for example after a restart)",
}
ORIGIN_MEANINGS = {
    Origin.REST: "placed through this API",
    Origin.WEBRTC: "a browser phone's INVITE with the X-Platforma headers",
    Origin.AGI: "a dialplan call through FastAGI",
}
ENDED_BY_MEANINGS = {
    EndedBy.AGENT: "the agent hung up (or the agent's phone refused or failed)",
    EndedBy.CALLEE: "the callee hung up (or the callee's side refused or failed)",
    EndedBy.API: "DELETE /click2dial/calls/{id}",
    EndedBy.TIMEOUT: "a ring timeout or the maximum call duration",
    EndedBy.SYSTEM: "the service or the PBX (a refused originate, a restart, the dialplan)",
}

#: Schema name -> (enum, meanings, description), one named schema per enum.
ENUMS = {
    "State": (State, STATE_MEANINGS, "The state of a call: " + " -> ".join(s.value for s in State)
              + f" ({State.ENDED.value} may follow any state)."),
    "Reason": (Reason, REASON_MEANINGS, "Why a call ended."),
    "Origin": (Origin, ORIGIN_MEANINGS, "How a call came in."),
    "EndedBy": (EndedBy, ENDED_BY_MEANINGS, "Who ended a call."),
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable_ref(name: str) -> dict:
    return {"anyOf": [_ref(name), {"type": "null"}]}


_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

#: The call resource (SPEC §2): field -> JSON Schema with its description, in
#: the order of the JSON answer. ``calls.model.call_resource`` builds it.
CALL_FIELDS: dict[str, dict] = {
    "id": {"type": "string", "pattern": CALL_ID_PATTERN,
           "description": "The call's id: 32 lowercase hexadecimal characters."},
    "origin": {**_ref("Origin"), "description": "How the call came in."},
    "agent": {"type": "string", "description": "The agent's extension or number."},
    "callee": {"type": "string", "description": "The customer's number."},
    "outbound_id": {"type": "string", "description": "The outbound_id as asked: `random`, a number, or \"\" "
                                                     "when none was given (the default CLID was used)."},
    "clid": {"type": "string", "description": "The caller ID actually presented to the callee."},
    "call_ref": {"type": "string", "description": f"The customer reference (at most {rules.CALL_REF_MAX} "
                                                  "characters), \"\" when none."},
    "state": {**_ref("State"), "description": "The call's state."},
    "reason": {**_nullable_ref("Reason"), "description": "Why the call ended; null until it has."},
    "ended_by": {**_nullable_ref("EndedBy"), "description": "Who ended the call; null until it has."},
    "created_at": {**_TIME, "description": "When the call was placed (ISO 8601, UTC, milliseconds)."},
    "answered_at": {**_NULLABLE_TIME, "description": "When the callee answered (ISO 8601, UTC); null if never."},
    "ended_at": {**_NULLABLE_TIME, "description": "When the call ended (ISO 8601, UTC); null while it is up."},
    "updated_at": {**_TIME, "description": "When the call last changed (ISO 8601, UTC); what "
                                           "`updated_after` filters on."},
    "duration_s": {"type": "number", "minimum": 0,
                   "description": "Talk time in seconds (millisecond precision), from the callee's answer to "
                                  "the end (or to now while connected); 0 if never answered."},
    "cause": {"type": ["integer", "null"], "minimum": 0, "maximum": 127,
              "description": "Once ended: the Q.850 hangup cause of the leg that decided the outcome "
                             "(the agent's leg for agent_*, the callee's for callee_* and rejected, "
                             "else the leg that hung up first), as Asterisk reported it; null when "
                             "unknown (e.g. ended through the API, or a FastAGI call)."},
    "sip_code": {"type": ["integer", "null"], "minimum": 100, "maximum": 699,
                 "description": "Once ended: that leg's final SIP response code (e.g. 486 busy, 480, "
                                "503), from Asterisk's hangup report; null when the leg got none."},
}

# --------------------------------------------------------------------------
# Query parameters of GET /click2dial/calls
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryParam:
    """One query parameter of the list: its JSON ``schema``, whether it may be
    given several times (``repeat``), and what it does."""

    name: str
    schema: dict
    description: str
    repeat: bool = False


LIST_PARAMETERS: dict[str, QueryParam] = {p.name: p for p in (
    QueryParam("state", _ref("State"), "Only calls in this state; give it several times for any of several.",
               repeat=True),
    QueryParam("origin", _ref("Origin"), "Only calls of this origin; several allowed.", repeat=True),
    QueryParam("agent", {"type": "string", "pattern": AGENT_PATTERN, "maxLength": 16},
               "Only calls of this agent (extension or number)."),
    QueryParam("call_ref", {"type": "string", "pattern": CALL_REF_PATTERN},
               f"Only calls with exactly this customer reference, cut to its first {rules.CALL_REF_MAX} "
               "characters as in a POST body (so a longer reference finds the call placed with it)."),
    QueryParam("created_after", _TIME, "Only calls placed at or after this time (ISO 8601 with a zone)."),
    QueryParam("created_before", _TIME, "Only calls placed before this time (ISO 8601 with a zone)."),
    QueryParam("updated_after", _TIME, "Only calls changed at or after this time (ISO 8601 with a zone): "
                                       "for syncing, pass the newest `updated_at` you have seen."),
    QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": PAGE_MAX, "default": PAGE_DEFAULT},
               f"Page size (number of calls), 1-{PAGE_MAX}."),
    QueryParam("cursor", {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,200}$"},
               "Where the page starts: the `next_cursor` of the page before. Opaque; pages stay stable "
               "while calls are placed (a new call never shifts a later page)."),
)}
