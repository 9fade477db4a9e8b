"""Examples of the OpenAPI document: bodies exactly as the service sends them.

``tests/unit/test_openapi_examples.py`` provokes each one from the real
application and compares (ids and times aside), so an example cannot drift
from what the service answers.
"""

from __future__ import annotations

from platforma_c2d import contract, rules

CALL_ID = "0e59c1a69ca444219150dbb9526b1771"

CALL_REQUEST = {"agent": "1001", "callee": "0215550100", "outbound_id": "random", "call_ref": "CRM-4711"}

#: A call that was answered and hung up through DELETE.
CALL = {
    "id": CALL_ID, "origin": "rest", "agent": "1001", "callee": "0215550100", "outbound_id": "random",
    "clid": "0115550001", "call_ref": "CRM-4711", "state": "ended", "reason": "completed", "ended_by": "api",
    "created_at": "2024-05-01T09:30:00.123Z", "answered_at": "2024-05-01T09:30:07.456Z",
    "ended_at": "2024-05-01T09:31:02.789Z", "updated_at": "2024-05-01T09:31:02.789Z", "duration_s": 55.333,
    "cause": None, "sip_code": None,
}

#: A call whose agent's phone is ringing.
CALL_RINGING = {
    **CALL, "state": "dialing_agent", "reason": None, "ended_by": None, "answered_at": None, "ended_at": None,
    "updated_at": CALL["created_at"], "duration_s": 0.0,
}

#: A call whose callee was busy: the callee's leg decided, in the carrier's words.
CALL_BUSY = {
    **CALL, "reason": "callee_busy", "ended_by": "callee", "answered_at": None, "ended_at": "2024-05-01T09:30:12.300Z",
    "updated_at": "2024-05-01T09:30:12.300Z", "duration_s": 0.0, "cause": 17, "sip_code": 486,
}

CALL_LIST = {"calls": [CALL], "total": 1, "total_exact": True, "limit": 50, "next_cursor": None}

CALL_HISTORY = {"id": CALL_ID, "states": [
    {"state": "dialing_agent", "at": "2024-05-01T09:30:00.130Z", "reason": None},
    {"state": "dialing_callee", "at": "2024-05-01T09:30:03.020Z", "reason": None},
    {"state": "connected", "at": "2024-05-01T09:30:07.460Z", "reason": None},
    {"state": "ended", "at": "2024-05-01T09:31:02.795Z", "reason": "completed"},
]}

HEALTH = {"status": "ok", "ari_connected": True, "store_writable": True}


def _error(error_id: str, message: str, details: dict | None = None) -> dict:
    return {"error": error_id, "message": message, "details": details or {}}


_KNOWN_PARAMS = ", ".join(contract.LIST_PARAMETERS)

#: Example name -> error body. Several per error id where the service says
#: different things (a body's fields, a query's parameters).
ERRORS: dict[str, dict] = {
    "invalid-request": _error("invalid-request", "the request breaks the Click2Dial input rules", {"fields": {
        "callee": f"invalid value '12345'; accepted: {rules.CALLEE_FORMATS}"}}),
    "invalid-query": _error("invalid-request", "bad query parameters: colour, limit", {"fields": {
        "colour": f"unknown query parameter; known: {_KNOWN_PARAMS}",
        "limit": f"invalid value '0'; accepted: an integer from 1 to {contract.PAGE_MAX}"}}),
    "invalid-json": _error("invalid-json", "the body is declared JSON but is not valid JSON", {"fields": {
        "body": "Expecting value: line 1 column 11 (char 10)"}}),
    "unauthorized": _error("unauthorized", "a bearer token is required"),
    "forbidden": _error("forbidden", "this token may not place calls for this agent",
                        {"fields": {"agent": "this token may not place calls for this agent"}}),
    "clid-not-allowed": _error("clid-not-allowed", "the outbound_id is not an allowed outbound ID on this PBX",
                               {"fields": {"outbound_id": "not an allowed outbound ID"}}),
    "destination-not-allowed": _error("destination-not-allowed", "calls to this callee number are not allowed",
                                      {"fields": {"callee": "calls to this number are not allowed on this PBX"}}),
    "no-such-call": _error("no-such-call", "no call with this id", {"id": "0123456789abcdef0123456789abcdef"}),
    "not-found": _error("not-found", f"no route /click2dial/nope; the routes are in {contract.PREFIX}/openapi.json"),
    "method-not-allowed": _error("method-not-allowed", "PATCH is not taken by /click2dial/calls; it takes GET, POST",
                                 {"allowed": ["GET", "POST"]}),
    "request-too-large": _error("request-too-large", contract.ERRORS["request-too-large"].meaning),
    "agent-busy": _error("agent-busy", "the agent already has an active call",
                         {"agent": "1001", "max_active_calls": 1}),
    "not-cancellable": _error("not-cancellable", "this FastAGI call was journalled without its channel; "
                                                 "it cannot be hung up from here", {"id": CALL_ID}),
    "unsupported-media-type": _error("unsupported-media-type", "the body must be JSON (Content-Type: application/json)",
                                     {"fields": {"Content-Type": "'text/plain' is not application/json"}}),
    "idempotency-key-reused": _error("idempotency-key-reused", "this Idempotency-Key was used with another body",
                                     {"idempotency_key": "crm-order-42"}),
    "rate-limited": _error("rate-limited", "too many reads (GET) for this token; retry after 60 s",
                           {"kind": "read", "limit_per_minute": 1}),
    "too-many-calls": _error("too-many-calls", "100 calls are up already for this token; try again when one ends",
                             {"scope": "token", "max_active_calls": 100}),
    "asterisk-unavailable": _error("asterisk-unavailable", "the PBX is not connected; try again shortly"),
}
