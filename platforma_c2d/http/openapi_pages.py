"""The OpenAPI description of the pages' routes (SPEC §13, ``http/pages.py``),
merged into the one document of ``http/openapi.py``."""

from __future__ import annotations

from platforma_c2d.http.sessions import COOKIE

_JSON = "application/json"


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _html(summary: str, description: str) -> dict:
    return {"get": {
        "tags": ["pages"], "summary": summary, "description": description, "security": [],
        "responses": {"200": {"description": "The page (HTML; its data comes from the API once logged in).",
                              "content": {"text/html": {"schema": {"type": "string"}}}}},
    }}


_FIELD_RULE = {
    "type": "object", "required": ["pattern", "formats"],
    "properties": {
        "pattern": {"type": "string", "description": "ECMA-262 regular expression the whole value must match."},
        "formats": {"type": "string", "description": "The accepted formats in words, as the API's messages say."},
        "max_length": {"type": "integer", "description": "call_ref only: a longer value is cut to this length."},
    },
}


def schemas() -> dict:
    """Component schemas of the pages' JSON answers."""
    return {
        "FieldRules": {
            "type": "object", "required": ["fields", "messages"],
            "description": "The input rules of SPEC §1 for clients that check before they send.",
            "properties": {
                "fields": {"type": "object", "additionalProperties": _FIELD_RULE,
                           "description": "agent, callee, outbound_id, call_ref."},
                "messages": {
                    "type": "object",
                    "description": "Templates of the messages in `details.fields` of a 400: `{value}` is "
                                   "the refused value quoted as Python's `ascii()` writes it (at most "
                                   "`value_shown_max` characters, then `value_cut`), `{formats}` the field's "
                                   "formats, `{char}`/`{position}` the first refused character (1-based).",
                    "properties": {k: {"type": "string"} for k in
                                   ("required", "invalid_value", "invalid_character", "value_cut")}
                    | {"value_shown_max": {"type": "integer"}},
                },
            },
        },
        "PageConfig": {
            "type": "object", "required": ["caller", "auth", "agents", "sip", "clids"],
            "properties": {
                "caller": {"type": "string", "description": "The name of the token logged in."},
                "auth": {"type": "boolean", "description": "Whether tokens are configured."},
                "agents": {"type": "array", "items": {"type": "string"},
                           "description": "The agents this token may act for; empty = all."},
                "session_ttl_s": {"type": "integer", "description": "Lifetime of a page session, seconds."},
                "sip": {"type": "object", "properties": {
                    "websocket_urls": {"type": "array", "items": {"type": "string"}},
                    "domain": {"type": "string", "description": "\"\" = the host of the WebSocket URL."},
                    "ice_servers": {"type": "array", "items": {"type": "string"}}}},
                "clids": {"type": "object", "description": "The pools are `GET /click2dial/clids`.",
                          "properties": {
                              "default": {"type": "string", "description": "`[clid] default`."},
                              "allowed": {"type": "array", "items": {"type": "string"},
                                          "description": "`[clid] allowed`: if not empty, the only "
                                                         "CLIDs accepted."}}},
                "last_event_id": {"type": ["integer", "null"],
                                  "description": "The newest stored event's id (where the board's stream "
                                                 "starts); null when the service has no event stream."},
            },
        },
    }


def paths(ref, r401, r429, body_errors: dict | None = None) -> dict:
    """Path items of the pages; ``ref(name)`` makes a ``$ref`` to a component schema;
    ``r401``, ``r429``: those responses; ``body_errors``: the responses (by status) to a
    body that is not JSON, bad JSON or too big, read as a call's body is."""
    cookie = {"name": "Set-Cookie", "description": f"`{COOKIE}=…; HttpOnly; SameSite=Strict; Path=/click2dial`"}
    return {
        "/click2dial/phone/": _html(
            "The agent's browser phone",
            "Registers the agent's extension over the PBX's SIP WebSocket and calls with the X-Platforma "
            "headers; answers calls placed for the agent. `?callee=` and `?call_ref=` (and `?outbound_id=`) "
            "fill the dial form (docs/pages.md)."),
        "/click2dial/board/": _html("The supervisors' board of calls",
                                    "Calls up now, today's outcomes, answer rate by caller ID, outcomes per hour."),
        "/click2dial/assets/{filename}": {"get": {
            "tags": ["pages"], "summary": "Scripts, styles and SIP.js of the pages", "security": [],
            "parameters": [{"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The file.", "content": {"*/*": {"schema": {"type": "string"}}}},
                          "404": {"description": "No such file."}},
        }},
        "/click2dial/rules": {"get": {
            "operationId": "getFieldRules", "tags": ["meta"], "security": [],
            "summary": "The input rules (SPEC §1) as patterns and message templates",
            "responses": {"200": _json("The rules.", ref("FieldRules"))},
        }},
        "/click2dial/pages/session": {
            "get": {
                "operationId": "getPageSession", "tags": ["pages"], "security": [],
                "summary": "Whether this browser has a valid page session",
                "responses": {"200": _json("Always 200.", {"type": "object", "required": ["active"],
                                                             "properties": {"active": {"type": "boolean"}}})},
            },
            "post": {
                "operationId": "openPageSession", "tags": ["pages"], "security": [],
                "summary": "Exchange an API token for a page session cookie",
                "description": "The cookie authenticates GET requests of the API (calls, events, the pages' "
                               "config) for `session_ttl_s` seconds; writes still need the bearer token.",
                "requestBody": {"required": True, "content": {_JSON: {"schema": {
                    "type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}}}}},
                "responses": {
                    "200": {**_json("Logged in.", {"type": "object", "properties": {
                        "caller": {"type": "string"}, "expires_in_s": {"type": "integer"}}}),
                        "headers": {"Set-Cookie": {"description": cookie["description"],
                                                   "schema": {"type": "string"}}}},
                    "401": r401, "429": r429, **(body_errors or {}),
                },
            },
            "delete": {
                "operationId": "closePageSession", "tags": ["pages"], "security": [],
                "summary": "Log out (the cookie is removed)",
                "responses": {"204": {"description": "Logged out."}},
            },
        },
        "/click2dial/pages/config": {"get": {
            "operationId": "getPageConfig", "tags": ["pages"],
            "security": [{"pageSession": []}, {"bearerAuth": []}],
            "summary": "What the pages need: who is logged in, the SIP WebSocket URLs, the default CLID",
            "responses": {"200": _json("The configuration.", ref("PageConfig")), "401": r401, "429": r429},
        }},
    }


SECURITY_SCHEME = {
    "type": "apiKey", "in": "cookie", "name": COOKIE,
    "description": "A page session (POST /click2dial/pages/session): accepted on GET requests only.",
}
