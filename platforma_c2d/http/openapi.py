"""The OpenAPI 3.1 description of the HTTP API (SPEC §2), served at
``GET /click2dial/openapi.json``.

Built from the contract (platforma_c2d.contract: formats, error catalogue,
enums, the call resource, the list's parameters, limits) and from the
examples of :mod:`platforma_c2d.http.examples`, which are the service's own
bodies. Schemas are JSON Schema 2020-12 as OpenAPI 3.1 takes them: a
nullable value is ``type: [T, "null"]`` (or ``anyOf`` a named enum and
``null``), and every enum is one named schema.

The document is built once (``functools.lru_cache``) and every caller gets
its own deep copy, so nobody can change the cached original.
"""

from __future__ import annotations

import copy
import functools

from platforma_c2d import contract, rules
from platforma_c2d.http import examples, openapi_clids, openapi_pages
from platforma_c2d.http.openapi_events import event_paths, event_schemas, event_webhooks

_JSON = "application/json"
P = contract.PREFIX

def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, example: dict | None = None, named: dict | None = None) -> dict:
    content: dict = {"schema": schema}
    if example is not None:
        content["example"] = example
    if named:
        content["examples"] = named
    return {_JSON: content}


def _errors(description: str, *names: str, headers: dict | None = None) -> dict:
    """A response carrying the Error schema, with the service's own bodies for ``names``
    (keys of ``examples.ERRORS``)."""
    ids = sorted({examples.ERRORS[n]["error"] for n in names})
    text = description + " (error id: " + ", ".join(f"`{e}`" for e in ids) + ")"
    named = {n: {"summary": contract.ERRORS[examples.ERRORS[n]["error"]].meaning, "value": examples.ERRORS[n]}
             for n in names}
    resp = {"description": text, "content": _json(_ref("Error"), named=named)}
    if headers:
        resp["headers"] = headers
    return resp


def _retry_after(what: str) -> dict:
    return {"Retry-After": {"description": f"Seconds to wait before {what}.",
                            "schema": {"type": "integer", "minimum": 0}}}


_R401 = _errors("No bearer token, or an unknown one. Carries `WWW-Authenticate: Bearer`.", "unauthorized",
                headers={"WWW-Authenticate": {"description": "The authentication scheme: `Bearer`.",
                                              "schema": {"type": "string"}}})
#: The page login's body (``POST /click2dial/pages/session``), read as a call's body is.
_LOGIN_BODY_ERRORS = {
    "400": _errors("The body is declared JSON but is not JSON.", "invalid-json"),
    "413": _errors(f"The body is {contract.MAX_BODY_BYTES // 1024} KiB or larger; refused before it is read.",
                   "request-too-large"),
    "415": _errors("The body is not declared `application/json`.", "unsupported-media-type"),
}
_R404 = _errors("No call with this id (or one of an agent the token is not for).", "no-such-call")
_R429 = _errors("Too many writes or reads for this token, or too many failed authentications from this "
                "address (`details.kind`).", "rate-limited",
                headers=_retry_after("sending a request of this kind again"))
_R503 = _errors("The PBX (Asterisk ARI) is not connected or did not answer in time, or the call journal "
                "is not keeping up. Nothing was changed.", "asterisk-unavailable",
                headers=_retry_after("trying again"))
_R503_STREAMS = {"description": "`[webhooks] max_streams` event streams are open already, or "
                                "`max_streams_per_token` of this token's (`details.scope`: `service` or "
                                "`token`; error id: `too-many-streams`).", "content": _json(_ref("Error")),
                 "headers": _retry_after("opening a stream again")}
_RDEFAULT = {"description": "Any other refusal, in the same format: `not-found` (404, no such route), "
                            "`method-not-allowed` (405, with `Allow`), `internal-error` (500).",
             "content": _json(_ref("Error"), named={
                 n: {"summary": contract.ERRORS[n].meaning, "value": examples.ERRORS[n]}
                 for n in ("not-found", "method-not-allowed")})}


def _enum_schema(name: str) -> dict:
    enum, meanings, description = contract.ENUMS[name]
    lines = "\n".join(f"- `{v.value}`: {meanings[v]}" for v in enum)
    return {"type": "string", "enum": [v.value for v in enum], "description": f"{description}\n\n{lines}"}


def _ref_description() -> str:
    return (f"Customer reference, written to every CDR row of the call (CDR variable `call_ref`). "
            f"Accepted: {rules.CALL_REF_FORMATS}. The characters are checked over the whole value; then a value "
            f"longer than {rules.CALL_REF_MAX} characters is cut to its first {rules.CALL_REF_MAX} characters "
            "(length alone never rejects). Missing, null or \"\" means no reference.")


def _schemas() -> dict:
    string_or_null = {"type": ["string", "null"], "pattern": contract.CALL_REF_PATTERN}
    schemas = {name: _enum_schema(name) for name in contract.ENUMS}
    schemas["CallRequest"] = {
        "type": "object",
        "description": ("A Click2Dial request: ring the agent first, then the callee with the chosen caller ID. "
                        "Every field is a JSON string (a JSON number is refused); digits are ASCII 0-9 only and a "
                        "value matches whole or not at all (no spaces, no leading `+`, no trailing newline). "
                        "Every invalid field is reported at once in a 400 `invalid-request`. Unknown fields "
                        "are refused."),
        "required": ["agent", "callee", "outbound_id"],
        "additionalProperties": False,
        "properties": {
            "agent": {"type": "string", "pattern": contract.AGENT_PATTERN, "minLength": 3, "maxLength": 16,
                      "description": f"The agent, rung first. Accepted: {rules.AGENT_FORMATS}. An extension rings "
                                     "its own endpoint; a number makes the agent's leg go out through the trunk.",
                      "examples": ["1001"]},
            "callee": {"type": "string", "pattern": contract.CALLEE_PATTERN, "minLength": 10, "maxLength": 16,
                       "description": f"The customer's number, rung through the trunk. Accepted: "
                                      f"{rules.CALLEE_FORMATS}.", "examples": ["0215550100"]},
            "outbound_id": {"type": "string", "pattern": contract.OUTBOUND_ID_PATTERN, "minLength": 6,
                            "maxLength": 11,
                            "description": f"The caller ID (CLID) presented to the callee. Accepted: "
                                           f"{rules.OUTBOUND_ID_FORMATS}. `random` draws a number from the PBX's "
                                           "pool. A number that is not an allowed outbound ID on this PBX is "
                                           "refused with 403 `clid-not-allowed`.", "examples": ["random"]},
            "call_ref": {**string_or_null, "description": _ref_description(), "examples": ["CRM-4711:lead~7"]},
            "contact_ref": {**string_or_null, "description": "The newer name of `call_ref`, same rules. Given alone "
                                                             "it becomes `call_ref`; both given with different "
                                                             "(uncut) values is a 400 on `contact_ref`."},
            "status_callback": {"type": ["string", "null"], "format": "uri", "maxLength": 2000,
                                "description": "A URL that receives this call's events as signed webhooks (the "
                                               "`callEvent` webhook, signed with `[webhooks] callback_secret`). "
                                               "Accepted only when it starts with one of `[webhooks] "
                                               "allowed_url_prefixes` and its path holds no `.` or `..` segment; "
                                               "otherwise a 400 `invalid-request`.",
                                "examples": ["https://crm.example.com/hooks/calls"]},
        },
        "examples": [examples.CALL_REQUEST],
    }
    schemas["Call"] = {
        "type": "object",
        "description": "A Click2Dial call, from any origin; readable long after it ended.",
        "required": list(contract.CALL_FIELDS),
        "properties": copy.deepcopy(contract.CALL_FIELDS),
        "examples": [examples.CALL, examples.CALL_BUSY],
    }
    schemas["CallHistory"] = {
        "type": "object",
        "description": "The states a call went through, oldest first (one entry per change).",
        "required": ["id", "states"],
        "properties": {
            "id": {"type": "string", "pattern": contract.CALL_ID_PATTERN, "description": "The call's id."},
            "states": {"type": "array", "items": {
                "type": "object", "required": ["state", "at", "reason"],
                "properties": {
                    "state": _ref("State"),
                    "at": {"type": "string", "format": "date-time",
                           "description": "When the change was journalled (ISO 8601, UTC, milliseconds)."},
                    "reason": {"anyOf": [_ref("Reason"), {"type": "null"}],
                               "description": "Why the call ended; null but on `ended`."},
                }}},
        },
    }
    schemas["CallList"] = {
        "type": "object",
        "description": "One page of calls, newest first.",
        "required": ["calls", "total", "total_exact", "limit", "next_cursor"],
        "properties": {
            "calls": {"type": "array", "items": _ref("Call")},
            "total": {"type": "integer", "minimum": 0, "maximum": contract.TOTAL_COUNT_MAX,
                      "description": "Number of calls matching the filters, over all pages, counted up to "
                                     f"{contract.TOTAL_COUNT_MAX}: when more match, it is {contract.TOTAL_COUNT_MAX} "
                                     "and `total_exact` is false."},
            "total_exact": {"type": "boolean",
                            "description": "False when more than `total` calls match (the count stopped at "
                                           f"{contract.TOTAL_COUNT_MAX})."},
            "limit": {"type": "integer", "minimum": 1, "maximum": contract.PAGE_MAX,
                      "description": "The page size used."},
            "next_cursor": {"type": ["string", "null"],
                            "description": "Pass as `cursor` for the next page; null on the last page."},
        },
    }
    schemas["Error"] = {
        "type": "object",
        "description": "Every error answer. Error ids (`error`), stable; messages are for people:\n\n" + "\n".join(
            f"- `{e.id}` ({e.status}): {e.meaning}" for e in contract.ERRORS.values()),
        "required": ["error", "message", "details"],
        "properties": {
            "error": {"type": "string", "pattern": contract.ERROR_ID_PATTERN,
                      "description": "A stable kebab-case error id (see the list above).",
                      "examples": ["invalid-request"]},
            "message": {"type": "string", "description": "One sentence for people, in the API's terms."},
            "details": {"type": "object", "additionalProperties": True,
                        "description": "Machine-readable extras. Every problem with the body, a query parameter "
                                       "or a header is under `fields`: its name (`body` for the body as a "
                                       "whole) -> what is wrong and what is accepted."},
        },
    }
    schemas["Health"] = {
        "type": "object",
        "required": ["status", "ari_connected", "store_writable"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"],
                       "description": "`ok` when ARI is connected and the store writable, else `degraded`."},
            "ari_connected": {"type": "boolean", "description": "Whether the ARI event WebSocket is up now."},
            "store_writable": {"type": "boolean", "description": "Whether the call store accepts writes."},
            "webhooks": {
                "type": ["object", "null"],
                "description": "The webhook delivery backlog (docs/events.md); null when the store cannot be "
                               "read. It never makes the service `degraded`.",
                "required": ["pending", "oldest_pending_s", "backlog_growing"],
                "properties": {
                    "pending": {"type": "integer", "minimum": 0, "description": "Deliveries not yet done."},
                    "oldest_pending_s": {"type": "number", "minimum": 0,
                                         "description": "Age of the oldest pending delivery, seconds."},
                    "backlog_growing": {"type": "boolean", "description": "The pending count rose at each of "
                                                                          "the last six samples, 10 s apart."},
                },
            },
            "cluster": {
                "type": "object",
                "description": "Only with `[cluster] node` set (docs/cluster.md): this instance's node, name and "
                               "role. A `standby` is `ok` when the store is writable (it serves the API; its "
                               "node's calls are the active instance's).",
                "required": ["node", "instance", "role"],
                "properties": {
                    "node": {"type": "string"}, "instance": {"type": "string"},
                    "role": {"type": "string", "enum": ["active", "standby", "lost"]},
                },
            },
            "sandbox": {"type": "boolean", "const": True,
                        "description": "Present (true) only in `platforma-c2d sandbox`: the PBX is simulated "
                                       "and no real call is ever placed."},
        },
    }
    schemas.update(openapi_clids.schemas(_ref))
    schemas.update(event_schemas())
    return schemas


def _call_id_param() -> dict:
    return {"name": "id", "in": "path", "required": True,
            "description": "The call's id (32 lowercase hexadecimal characters).",
            "schema": {"type": "string", "pattern": contract.CALL_ID_PATTERN}}


def _list_params() -> list[dict]:
    out = []
    for p in contract.LIST_PARAMETERS.values():
        schema = {"type": "array", "items": p.schema} if p.repeat else p.schema
        param = {"name": p.name, "in": "query", "required": False, "description": p.description, "schema": schema}
        if p.repeat:
            param.update(style="form", explode=True)
        out.append(param)
    return out


def _calls_paths() -> dict:
    call_200 = {"description": "The call.", "content": _json(_ref("Call"), examples.CALL)}
    return {
        f"{P}/calls": {
            "post": {
                "operationId": "placeCall", "tags": ["calls"], "summary": "Place a Click2Dial call",
                "description": ("Rings the agent; once the agent answers, rings the callee through the trunk with "
                                "the chosen caller ID, and bridges both when the callee answers. The call is "
                                f"stored before the answer is sent. Body at most {contract.MAX_BODY_BYTES // 1024} "
                                "KiB."),
                "parameters": [{
                    "name": contract.IDEMPOTENCY_KEY_HEADER, "in": "header", "required": False,
                    "description": (f"Optional, 1-{contract.IDEMPOTENCY_KEY_MAX} printable ASCII characters. The "
                                    "same key with the same body within the idempotency window (a day by default) "
                                    f"returns the first call (with `{contract.REPLAYED_HEADER}: true`) and dials "
                                    "nothing; with another body: 422."),
                    "schema": {"type": "string", "minLength": 1, "maxLength": contract.IDEMPOTENCY_KEY_MAX,
                               "pattern": contract.IDEMPOTENCY_KEY_PATTERN}}],
                "requestBody": {"required": True, "content": _json(_ref("CallRequest"), examples.CALL_REQUEST)},
                "responses": {
                    "201": {"description": "The call was placed (or replayed); the call resource.",
                            "headers": {
                                "Location": {"description": f"The call's URL: `{P}/calls/{{id}}`.",
                                             "schema": {"type": "string"}},
                                contract.REPLAYED_HEADER: {
                                    "description": "`true` when an earlier call with the same Idempotency-Key and "
                                                   "body is returned and nothing was dialled.",
                                    "schema": {"type": "string", "enum": ["true"]}}},
                            "content": _json(_ref("Call"), examples.CALL_RINGING)},
                    "400": _errors("The body is declared JSON but is not JSON (`invalid-json`); or it is JSON that "
                                   "breaks the rules (not an object, a key twice, too deep, a number of over 4,300 "
                                   "digits, bad fields, a bad Idempotency-Key); `details.fields` names every one.",
                                   "invalid-request", "invalid-json"),
                    "401": _R401,
                    "403": _errors("Not allowed: this agent for this token, this outbound ID, or this number.",
                                   "forbidden", "clid-not-allowed", "destination-not-allowed"),
                    "409": _errors("The agent already has the maximum number of active calls.", "agent-busy"),
                    "413": _errors(f"The body is {contract.MAX_BODY_BYTES // 1024} KiB or larger; refused before "
                                   "it is read (from its `Content-Length`), before the token is checked.",
                                   "request-too-large"),
                    "415": _errors("The body is not declared `application/json`.", "unsupported-media-type"),
                    "422": _errors("The Idempotency-Key was used before with a different body.",
                                   "idempotency-key-reused"),
                    "429": _errors("Too many writes for this token (`rate-limited`), or too many calls up "
                                   "at once in the service or for this token (`too-many-calls`, "
                                   "`[limits] max_active_calls`, `max_active_calls_per_token`).",
                                   "rate-limited", "too-many-calls",
                                   headers=_retry_after("sending a request of this kind again")),
                    "503": _R503, "default": _RDEFAULT,
                },
            },
            "get": {
                "operationId": "listCalls", "tags": ["calls"], "summary": "List calls, newest first, by cursor",
                "description": ("Filters combine (all must hold); `state` and `origin` may be given several times "
                                "(any of). Unknown or bad parameters are a 400 naming each. To sync, pass the "
                                "newest `updated_at` you have as `updated_after` and follow `next_cursor`."),
                "parameters": _list_params(),
                "responses": {
                    "200": {"description": "One page of calls.", "content": _json(_ref("CallList"),
                                                                                   examples.CALL_LIST)},
                    "400": _errors("Unknown or bad query parameters, every one named in `details.fields`.",
                                   "invalid-query"),
                    "401": _R401, "429": _R429, "503": _R503, "default": _RDEFAULT,
                },
            },
        },
        f"{P}/calls/{{id}}": {
            "parameters": [_call_id_param()],
            "get": {
                "operationId": "getCall", "tags": ["calls"], "summary": "Read one call (also long after it ended)",
                "responses": {"200": call_200, "401": _R401, "404": _R404, "429": _R429, "503": _R503,
                              "default": _RDEFAULT},
            },
            "delete": {
                "operationId": "cancelCall", "tags": ["calls"], "summary": "Hang up every leg of a call",
                "description": ("Hangs up every leg. The call ends `cancelled` if the callee had not answered, "
                                "`completed` if they had, with `ended_by: api`. An ended call is returned "
                                "unchanged; a call whose outcome was already known (the agent hears the busy "
                                "tone) keeps it. A FastAGI call is hung up through ARI."),
                "responses": {
                    "200": {"description": "The call, now `ended`.", "content": _json(_ref("Call"), examples.CALL)},
                    "401": _R401, "404": _R404,
                    "409": _errors("A FastAGI call journalled without its channel cannot be hung up from here.",
                                   "not-cancellable"),
                    "429": _R429, "503": _R503, "default": _RDEFAULT,
                },
            },
        },
        f"{P}/calls/{{id}}/history": {
            "parameters": [_call_id_param()],
            "get": {
                "operationId": "getCallHistory", "tags": ["calls"],
                "summary": "The states a call went through, oldest first",
                "description": "One entry per change of state, with the time it was journalled; `reason` only on "
                               "`ended`. A client that polls can show every state, even one shorter than its "
                               "polling interval.",
                "responses": {
                    "200": {"description": "The call's id and its states.",
                            "content": _json(_ref("CallHistory"), examples.CALL_HISTORY)},
                    "401": _R401, "404": _R404, "429": _R429, "503": _R503, "default": _RDEFAULT,
                },
            },
        },
    }


def _open_paths() -> dict:
    return {
        f"{P}/openapi.json": {"get": {
            "operationId": "getOpenApi", "tags": ["meta"], "summary": "This OpenAPI 3.1 description",
            "security": [],
            "responses": {"200": {"description": "The OpenAPI document.",
                                  "content": _json({"type": "object"})}}}},
        "/healthz": {"get": {
            "operationId": "health", "tags": ["ops"], "summary": "Health: ARI connection and store", "security": [],
            "responses": {
                "200": {"description": "ARI connected and the store writable.",
                        "content": _json(_ref("Health"), examples.HEALTH)},
                "503": {"description": "Degraded: ARI not connected or the store not writable.",
                        "content": _json(_ref("Health"))}}}},
        "/metrics": {"get": {
            "operationId": "metrics", "tags": ["ops"], "summary": "Prometheus metrics",
            "description": ("Served without a token to the addresses of `[metrics] allow_from` (loopback by "
                            "default); from elsewhere only with the scrape token of `[metrics] token_sha256` "
                            "(not an API token)."),
            "security": [{}, {"scrapeToken": []}],
            "responses": {"200": {"description": "Metrics in the Prometheus text format (durations in seconds).",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                          "401": _errors("Not from an allowed address, and no or another scrape token.",
                                         "unauthorized"),
                          "403": _errors("Not from an allowed address, and no scrape token is configured.",
                                         "forbidden")}}},
    }


@functools.lru_cache(maxsize=1)
def _document() -> dict:
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Platforma Click2Dial",
            "version": contract.API_VERSION,
            "description": (
                "Click2Dial for the Asterisk PBX: connect an agent to a customer (the callee) with a chosen caller "
                "ID (outbound_id) and a customer reference (call_ref) that lands in the CDRs. Times are ISO 8601 "
                "UTC; durations are in seconds; lengths are in characters. Every `/click2dial` route except this "
                "document needs `Authorization: Bearer <token>` (unless no token is configured). Every answer "
                f"carries `{contract.API_VERSION_HEADER}` (this document's version) and `{contract.REQUEST_ID_HEADER}` "
                "(yours, when it is 1-128 letters, digits or `._~:/+=-`, else one made for the request; it is on "
                "every log line of the request). Errors are JSON everywhere, also for an unknown route (404 "
                "`not-found`) or method (405 `method-not-allowed`)."),
        },
        "servers": [{"url": "/", "description": "The service that serves this document."}],
        "tags": [
            {"name": "calls", "description": "Place, read, list and cancel calls."},
            {"name": "clids", "description": "CLID pools and the health of their numbers."},
            {"name": "ops", "description": "Health (open) and metrics (allowed addresses, or the scrape token)."},
            {"name": "meta", "description": "This description."},
            {"name": "pages", "description": "The agent's phone and the supervisors' board (docs/pages.md)."},
            {"name": "events", "description": "Call events: the stream, and the webhook receivers implement."},
        ],
        "security": [{"bearerAuth": []}],
        "paths": {**_calls_paths(), **openapi_clids.paths(_ref, _json, _R401, _R429, _R503, _RDEFAULT),
                  **_open_paths(), **openapi_pages.paths(_ref, _R401, _R429, _LOGIN_BODY_ERRORS),
                  **event_paths(_errors("A bad cursor or filter.", "invalid-query"), _R401, _R429, _R503_STREAMS)},
        "webhooks": event_webhooks(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "A configured API token (stored as its SHA-256 digest)."},
                "pageSession": openapi_pages.SECURITY_SCHEME,
                "scrapeToken": {"type": "http", "scheme": "bearer",
                                "description": "The `/metrics` scrape token (`[metrics] token_sha256`), "
                                               "not an API token."},
            },
            "schemas": {**_schemas(), **openapi_pages.schemas()},
        },
    }


def openapi_document() -> dict:
    """The OpenAPI 3.1 description of the API (SPEC §2), as a fresh dict (JSON-ready)."""
    return copy.deepcopy(_document())


__all__ = ["openapi_document"]
