"""The OpenAPI 3.0.3 description of the HTTP API (SPEC §2), served at
``GET /click2dial/openapi.json``.

The document is built once (``functools.lru_cache``) and every caller gets
its own deep copy, so nobody can change the cached original.

Patterns are JSON Schema (ECMA-262) regular expressions, anchored with
``^...$``: in ECMA-262 without the ``m`` flag ``$`` matches only at the very
end of the value, so a trailing newline is refused, as SPEC §1 asks. (Python's
``re`` differs: there ``$`` also matches before a final ``\\n``; the server
itself checks with ``re.fullmatch`` in ``platforma_c2d.rules``.)
"""

from __future__ import annotations

import copy
import functools

from platforma_c2d import __version__, rules
from platforma_c2d.calls.model import Origin, Reason, State

# --------------------------------------------------------------------------
# Input patterns of SPEC §1 (ASCII digits only, whole value).
# --------------------------------------------------------------------------

_EXTENSION = "[0-9]{3,4}"
_CLID_NUMBER = "0[0-9]{9}|27[0-9]{9}"
_CALLEE_NUMBER = "0[0-9]{9}|27[0-9]{9}|00[0-9]{11,14}"

AGENT_PATTERN = f"^(?:{_EXTENSION}|{_CALLEE_NUMBER})$"
CALLEE_PATTERN = f"^(?:{_CALLEE_NUMBER})$"
OUTBOUND_ID_PATTERN = f"^(?:{rules.RANDOM}|{_CLID_NUMBER})$"
CALL_REF_PATTERN = "^[A-Za-z0-9._~:-]*$"
CALL_ID_PATTERN = "^[0-9a-f]{32}$"
IDEMPOTENCY_KEY_PATTERN = "^[ -~]{1,200}$"
ERROR_ID_PATTERN = "^[a-z0-9]+(?:-[a-z0-9]+)*$"

#: Error ids a client may see, with their HTTP status and meaning.
ERROR_IDS: tuple[tuple[str, int, str], ...] = (
    ("invalid-request", 400, "the body, a query parameter or a header breaks the rules; "
                             "`details.fields` maps each bad field to why and lists the accepted formats"),
    ("unauthorized", 401, "no bearer token, or an unknown one"),
    ("forbidden", 403, "the token may not place calls for this agent"),
    ("clid-not-allowed", 403, "the outbound_id is not in the configured list of allowed CLIDs"),
    ("destination-not-allowed", 403, "the callee (or external agent) number is refused by the dialling policy"),
    ("no-such-call", 404, "no call with this id"),
    ("agent-busy", 409, "the agent already has the maximum number of active calls"),
    ("not-cancellable", 409, "the call cannot be hung up from here: a FastAGI call journalled "
                             "without its channel (by an older version)"),
    ("request-too-large", 413, "the body is larger than 64 KiB"),
    ("invalid-json", 400, "the body is declared JSON but is not JSON: it does not parse, is not UTF-8 "
                          "or holds NaN or Infinity"),
    ("unsupported-media-type", 415, "the body is not declared JSON (Content-Type: application/json)"),
    ("idempotency-key-reused", 422, "the Idempotency-Key was used before with a different body"),
    ("rate-limited", 429, "too many writes (POST, DELETE) or reads (GET) for this token, counted apart; "
                          "retry after `Retry-After` seconds"),
    ("asterisk-unavailable", 503, "the PBX (ARI) is not connected or did not answer in time; try again shortly"),
)

_JSON = "application/json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _error_response(description: str, *error_ids: str, headers: dict | None = None) -> dict:
    """A response carrying the Error schema; ``error_ids``: the ids expected here."""
    text = description
    if error_ids:
        text += " (error id: " + ", ".join(f"`{e}`" for e in error_ids) + ")"
    resp: dict = {"description": text, "content": {_JSON: {"schema": _ref("Error")}}}
    if error_ids:
        status = {e: s for e, s, _ in ERROR_IDS}
        meaning = {e: m for e, _, m in ERROR_IDS}
        resp["content"][_JSON]["examples"] = {
            e: {"summary": meaning[e],
                "value": {"error": e, "message": meaning[e][:1].upper() + meaning[e][1:] + ".",
                          "details": _example_details(e)}}
            for e in error_ids if e in status
        }
    if headers:
        resp["headers"] = headers
    return resp


def _example_details(error_id: str) -> dict:
    if error_id == "invalid-request":
        return {"fields": {"callee": "invalid value '12345'; accepted: " + rules.CALLEE_FORMATS}}
    if error_id == "no-such-call":
        return {"id": "0123456789abcdef0123456789abcdef"}
    if error_id == "agent-busy":
        return {"agent": "1001", "max_active_calls": 1}
    return {}


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    }
}

_R401 = _error_response("No bearer token, or an unknown one. Carries a `WWW-Authenticate: Bearer` header.",
                        "unauthorized",
                        headers={"WWW-Authenticate": {"description": "The authentication scheme: `Bearer`.",
                                                      "schema": {"type": "string"}}})
_R404 = _error_response("No call with this id.", "no-such-call")
_R429 = _error_response("Too many requests for this token.", "rate-limited", headers=_RETRY_AFTER)
_R413 = _error_response(
    "The body is 64 KiB or larger. The HTTP server itself refuses it before the service reads it, "
    "with `Content-Type: text/plain` and a short text body (`exceeds max_body of 65536`); the JSON "
    "error is the service's second guard, for a body that gets past the server.", "request-too-large")
_R413["content"]["text/plain"] = {"schema": {"type": "string"}, "example": "exceeds max_body of 65536"}
_R503 = _error_response("The PBX (Asterisk ARI) is not connected or did not answer in time, or the "
                        "call journal is not keeping up. Nothing was changed; retry shortly.",
                        "asterisk-unavailable")


def _schemas() -> dict:
    states = [s.value for s in State]
    reasons = [r.value for r in Reason]
    origins = [o.value for o in Origin]
    ref_description = (
        "Customer reference, written to every CDR row of the call (CDR variable `call_ref`). "
        f"Accepted: {rules.CALL_REF_FORMATS}. The characters are checked over the whole value; "
        f"then a value longer than {rules.CALL_REF_MAX} characters is cut to its first "
        f"{rules.CALL_REF_MAX} characters (length alone never rejects). Missing, null or \"\" means no reference."
    )
    return {
        "CallRequest": {
            "type": "object",
            "description": (
                "A Click2Dial request: ring the agent first, then the callee with the chosen caller ID. "
                "Every field is a JSON string (a JSON number is refused); digits are ASCII 0-9 only and a "
                "value matches whole or not at all (no spaces, no leading `+`, no trailing newline). "
                "Every invalid field is reported at once in a 400 `invalid-request`. Unknown fields are refused."
            ),
            "required": ["agent", "callee", "outbound_id"],
            "additionalProperties": False,
            "properties": {
                "agent": {
                    "type": "string",
                    "pattern": AGENT_PATTERN,
                    "minLength": 3,
                    "maxLength": 16,
                    "description": (
                        f"The agent, rung first. Accepted: {rules.AGENT_FORMATS}. An extension rings its own "
                        "endpoint; a number makes the agent's leg go out through the trunk."
                    ),
                    "example": "1001",
                },
                "callee": {
                    "type": "string",
                    "pattern": CALLEE_PATTERN,
                    "minLength": 10,
                    "maxLength": 16,
                    "description": f"The customer's number, rung through the trunk. Accepted: {rules.CALLEE_FORMATS}.",
                    "example": "0215550100",
                },
                "outbound_id": {
                    "type": "string",
                    "pattern": OUTBOUND_ID_PATTERN,
                    "minLength": 6,
                    "maxLength": 11,
                    "description": (
                        f"The caller ID (CLID) presented to the callee. Accepted: {rules.OUTBOUND_ID_FORMATS}. "
                        "`random` draws a number from the configured CLID pool. When a list of allowed CLIDs "
                        "is configured, any other number is refused with 403 `clid-not-allowed`."
                    ),
                    "example": "random",
                },
                "call_ref": {
                    "type": "string",
                    "nullable": True,
                    "pattern": CALL_REF_PATTERN,
                    "description": ref_description,
                    "example": "CRM-4711:lead~7",
                },
                "contact_ref": {
                    "type": "string",
                    "nullable": True,
                    "pattern": CALL_REF_PATTERN,
                    "description": (
                        "The newer name of `call_ref`, same rules. Given alone it becomes `call_ref`; "
                        "both given with different (uncut) values is a 400 `invalid-request` on `contact_ref`."
                    ),
                },
            },
            "example": {"agent": "1001", "callee": "0215550100", "outbound_id": "random",
                        "call_ref": "CRM-4711"},
        },
        "Call": {
            "type": "object",
            "description": (
                "A Click2Dial call, from any origin. States: dialing_agent -> dialing_callee -> connected -> "
                "ended (ended may follow any state). Readable long after it ended."
            ),
            "required": ["id", "origin", "agent", "callee", "outbound_id", "clid", "call_ref", "state",
                         "reason", "created_at", "answered_at", "ended_at", "duration_s"],
            "properties": {
                "id": {"type": "string", "pattern": CALL_ID_PATTERN,
                       "description": "The call's id: 32 lowercase hexadecimal characters.",
                       "example": "0123456789abcdef0123456789abcdef"},
                "origin": {"type": "string", "enum": origins,
                           "description": "How the call came in: `rest` (this API), `webrtc` (a browser phone's "
                                          "INVITE) or `agi` (FastAGI dialplan)."},
                "agent": {"type": "string", "description": "The agent's extension or number."},
                "callee": {"type": "string", "description": "The customer's number."},
                "outbound_id": {"type": "string",
                                "description": "The outbound_id as asked: `random`, a number, or \"\" when none "
                                               "was given (the configured default CLID was used)."},
                "clid": {"type": "string", "description": "The caller ID actually presented to the callee."},
                "call_ref": {"type": "string",
                             "description": f"The customer reference (at most {rules.CALL_REF_MAX} characters), "
                                            "\"\" when none."},
                "state": {"type": "string", "enum": states, "description": "The call's state."},
                "reason": {"type": "string", "nullable": True, "enum": reasons + [None],
                           "description": "Why the call ended; null until the state is `ended`."},
                "created_at": {"type": "string", "format": "date-time",
                               "description": "When the call was placed (ISO 8601, UTC, milliseconds).",
                               "example": "2024-05-01T09:30:00.123Z"},
                "answered_at": {"type": "string", "format": "date-time", "nullable": True,
                                "description": "When the callee answered (ISO 8601, UTC); null if never."},
                "ended_at": {"type": "string", "format": "date-time", "nullable": True,
                             "description": "When the call ended (ISO 8601, UTC); null while it is up."},
                "duration_s": {"type": "number", "minimum": 0,
                               "description": "Talk time in seconds (millisecond precision), from the callee's "
                                              "answer to the end (or to now while connected); 0 if never answered."},
            },
        },
        "CallHistory": {
            "type": "object",
            "description": "The states a call went through, oldest first (one entry per change).",
            "required": ["id", "states"],
            "properties": {
                "id": {"type": "string", "pattern": CALL_ID_PATTERN, "description": "The call's id."},
                "states": {"type": "array", "items": {
                    "type": "object", "required": ["state", "at", "reason"],
                    "properties": {
                        "state": {"type": "string", "enum": states},
                        "at": {"type": "string", "format": "date-time",
                               "description": "When the change was journalled (ISO 8601, UTC, milliseconds)."},
                        "reason": {"type": "string", "nullable": True, "enum": reasons + [None],
                                   "description": "Why the call ended; null but on `ended`."},
                    }}},
            },
        },
        "CallList": {
            "type": "object",
            "description": "One page of calls, newest first.",
            "required": ["calls", "total", "limit", "offset"],
            "properties": {
                "calls": {"type": "array", "items": _ref("Call")},
                "total": {"type": "integer", "minimum": 0,
                          "description": "Number of calls matching the filter, over all pages."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 200,
                          "description": "The page size used."},
                "offset": {"type": "integer", "minimum": 0,
                           "description": "Number of matching calls skipped before this page."},
            },
        },
        "Error": {
            "type": "object",
            "description": "Every error answer. Error ids (`error`):\n\n" + "\n".join(
                f"- `{e}` ({s}): {m}" for e, s, m in ERROR_IDS
            ) + "\n\nThe server may also answer `not-found`, `method-not-allowed` or `internal-error` "
                "(500, details in the service log only).",
            "required": ["error", "message", "details"],
            "properties": {
                "error": {"type": "string", "pattern": ERROR_ID_PATTERN,
                          "description": "A stable kebab-case error id (see the list above).",
                          "example": "invalid-request"},
                "message": {"type": "string", "description": "One sentence for humans."},
                "details": {"type": "object", "additionalProperties": True,
                            "description": "Machine-readable extras; for `invalid-request`, `fields` maps "
                                           "each bad field's name to what was wrong and the accepted formats."},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "ari_connected", "store_writable"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded"],
                           "description": "`ok` when ARI is connected and the store writable, else `degraded`."},
                "ari_connected": {"type": "boolean",
                                  "description": "Whether the ARI event WebSocket to Asterisk is up now."},
                "store_writable": {"type": "boolean", "description": "Whether the call store accepts writes."},
            },
        },
    }


def _call_id_param() -> dict:
    return {"name": "id", "in": "path", "required": True,
            "description": "The call's id (32 lowercase hexadecimal characters).",
            "schema": {"type": "string"}}


def _paths() -> dict:
    call_200 = {"description": "The call.", "content": {_JSON: {"schema": _ref("Call")}}}
    return {
        "/click2dial/calls": {
            "post": {
                "operationId": "placeCall",
                "tags": ["calls"],
                "summary": "Place a Click2Dial call",
                "description": (
                    "Rings the agent; once the agent answers, rings the callee through the trunk with the "
                    "chosen caller ID, and bridges both when the callee answers. The call is stored before "
                    "the answer is sent. Body at most 64 KiB."
                ),
                "parameters": [{
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": (
                        "Optional, 1-200 printable ASCII characters. The same key with the same body within the "
                        "idempotency window (seconds, configured; 86400 by default) returns the first call "
                        "(with `Idempotent-Replayed: true`) and dials nothing; with another body: 422."
                    ),
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                               "pattern": IDEMPOTENCY_KEY_PATTERN},
                }],
                "requestBody": {"required": True,
                                "content": {_JSON: {"schema": _ref("CallRequest")}}},
                "responses": {
                    "201": {
                        "description": "The call was placed (or replayed); the call resource.",
                        "headers": {
                            "Location": {"description": "The call's URL: `/click2dial/calls/{id}`.",
                                         "schema": {"type": "string"}},
                            "Idempotent-Replayed": {
                                "description": "`true` when an earlier call with the same Idempotency-Key "
                                               "and body is returned and nothing was dialled.",
                                "schema": {"type": "string", "enum": ["true"]}},
                        },
                        "content": {_JSON: {"schema": _ref("Call")}},
                    },
                    "400": _error_response("The body is declared JSON but is not JSON (`invalid-json`); or it "
                                           "is JSON but not an object, gives a key twice, is nested "
                                           "too deeply or holds a number of over 4,300 digits, or breaks the "
                                           "input rules; `details.fields` names every bad field.",
                                           "invalid-request", "invalid-json"),
                    "401": _R401,
                    "403": _error_response("Not allowed: this agent for this token, this CLID, or this number.",
                                           "forbidden", "clid-not-allowed", "destination-not-allowed"),
                    "409": _error_response("The agent already has the maximum number of active calls.",
                                           "agent-busy"),
                    "413": _R413,
                    "415": _error_response("The body is not declared `application/json`.",
                                           "unsupported-media-type"),
                    "422": _error_response("The Idempotency-Key was used before with a different body.",
                                           "idempotency-key-reused"),
                    "429": _R429,
                    "503": _R503,
                },
            },
            "get": {
                "operationId": "listCalls",
                "tags": ["calls"],
                "summary": "List calls, newest first, paged",
                "parameters": [
                    {"name": "state", "in": "query", "required": False,
                     "description": "Only calls in this state.",
                     "schema": {"type": "string", "enum": [s.value for s in State]}},
                    {"name": "limit", "in": "query", "required": False,
                     "description": "Page size (number of calls), 1-200.",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
                    {"name": "offset", "in": "query", "required": False,
                     "description": "Number of matching calls to skip.",
                     "schema": {"type": "integer", "minimum": 0, "maximum": 1000000000, "default": 0}},
                ],
                "responses": {
                    "200": {"description": "One page of calls.",
                            "content": {_JSON: {"schema": _ref("CallList")}}},
                    "400": _error_response("Unknown state, or limit/offset out of range.", "invalid-request"),
                    "401": _R401,
                    "429": _R429,
                    "503": _R503,
                },
            },
        },
        "/click2dial/calls/{id}": {
            "parameters": [_call_id_param()],
            "get": {
                "operationId": "getCall",
                "tags": ["calls"],
                "summary": "Read one call (also long after it ended)",
                "responses": {"200": call_200, "401": _R401, "404": _R404, "429": _R429, "503": _R503},
            },
            "delete": {
                "operationId": "cancelCall",
                "tags": ["calls"],
                "summary": "Cancel a call: hang up every leg",
                "description": "Hangs up every leg; the call ends with reason `cancelled`. An already "
                               "ended call is returned unchanged. A call whose outcome was already "
                               "known (the agent hears the busy or congestion tone) keeps that "
                               "reason. A FastAGI call is hung up through ARI; the dialplan's "
                               "hangup handler then journals it `cancelled`.",
                "responses": {
                    "200": {"description": "The call, now `ended` (reason `cancelled` unless it had "
                                           "already ended).",
                            "content": {_JSON: {"schema": _ref("Call")}}},
                    "401": _R401, "404": _R404,
                    "409": _error_response("A FastAGI call journalled without its channel cannot be "
                                           "hung up from here.", "not-cancellable"),
                    "429": _R429, "503": _R503,
                },
            },
        },
        "/click2dial/calls/{id}/history": {
            "parameters": [_call_id_param()],
            "get": {
                "operationId": "getCallHistory",
                "tags": ["calls"],
                "summary": "The states a call went through, oldest first",
                "description": "One entry per change of state, with the time it was journalled; "
                               "`reason` only on `ended`. A client that polls the call can show "
                               "every state, even one shorter than its polling interval.",
                "responses": {
                    "200": {"description": "The call's id and its states.",
                            "content": {_JSON: {"schema": _ref("CallHistory")}}},
                    "401": _R401, "404": _R404, "429": _R429, "503": _R503,
                },
            },
        },
        "/click2dial/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "tags": ["meta"],
                "summary": "This OpenAPI 3 description",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document.",
                                      "content": {_JSON: {"schema": {"type": "object"}}}}},
            },
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "tags": ["ops"],
                "summary": "Health: ARI connection and store",
                "security": [],
                "responses": {
                    "200": {"description": "ARI connected and the store writable.",
                            "content": {_JSON: {"schema": _ref("Health")}}},
                    "503": {"description": "Degraded: ARI not connected or the store not writable.",
                            "content": {_JSON: {"schema": _ref("Health")}}},
                },
            },
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["ops"],
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {
                    "200": {"description": "Metrics in the Prometheus text exposition format "
                                           "(durations in seconds).",
                            "content": {"text/plain": {"schema": {"type": "string"}}}},
                },
            },
        },
    }


@functools.lru_cache(maxsize=1)
def _document() -> dict:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Platforma Click2Dial",
            "version": __version__,
            "description": (
                "Click2Dial for the Asterisk PBX: connect an agent to a customer (the callee) with a chosen "
                "caller ID (outbound_id) and a customer reference (call_ref) that lands in the CDRs. "
                "Times are ISO 8601 UTC; durations are in seconds; lengths are in characters. "
                "Every `/click2dial` route except this document needs `Authorization: Bearer <token>` "
                "(unless no token is configured)."
            ),
        },
        "tags": [
            {"name": "calls", "description": "Place, read, list and cancel calls."},
            {"name": "ops", "description": "Health and metrics, without authentication."},
            {"name": "meta", "description": "This description."},
        ],
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "A configured API token (stored as its SHA-256 digest)."},
            },
            "schemas": _schemas(),
        },
    }


def openapi_document() -> dict:
    """The OpenAPI 3.0.3 description of the API (SPEC §2), as a fresh dict (JSON-ready)."""
    return copy.deepcopy(_document())


__all__ = ["openapi_document"]
