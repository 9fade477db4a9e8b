"""The call events' part of the OpenAPI description (SPEC §10): the Event schema,
``GET /click2dial/events`` (stream and page) and the webhook a receiver implements.

Kept apart from :mod:`platforma_c2d.http.openapi`, which merges it in.
"""

from __future__ import annotations

from platforma_c2d.calls.model import State

_JSON = "application/json"
_SSE = "text/event-stream"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def event_schemas() -> dict:
    """``Event`` and ``EventPage``."""
    return {
        "Event": {
            "type": "object",
            "description": "One change of state of a call. Stored with the change itself (no state "
                           "without its event); `id` is unique and increasing, so a consumer resumes "
                           "after the last id it has. Delivered at least once: deduplicate by `id`.",
            "required": ["id", "type", "at", "call"],
            "properties": {
                "id": {"type": "integer", "minimum": 1, "description": "The event's id, increasing."},
                "type": {"type": "string", "enum": [f"call.{s.value}" for s in State],
                         "description": "`call.` and the state the call entered."},
                "at": {"type": "string", "format": "date-time",
                       "description": "When the change was stored (ISO 8601, UTC, milliseconds)."},
                "call": {"allOf": [_ref("Call")],
                         "description": "The call as `GET /click2dial/calls/{id}` returned it then."},
            },
        },
        "EventPage": {
            "type": "object",
            "description": "The events after `after`, oldest first.",
            "required": ["events", "after", "next_after", "more"],
            "properties": {
                "events": {"type": "array", "items": _ref("Event")},
                "after": {"type": "integer", "minimum": 0, "description": "The cursor asked for."},
                "next_after": {"type": "integer", "minimum": 0,
                               "description": "The cursor of the next page (the last event's id)."},
                "more": {"type": "boolean", "description": "Whether more events are stored already."},
            },
        },
    }


def event_paths(r400: dict, r401: dict, r429: dict, r503: dict) -> dict:
    """``/click2dial/events``, with the error answers of the main document."""
    return {
        "/click2dial/events": {
            "get": {
                "operationId": "listEvents",
                "tags": ["events"],
                "summary": "Call events: a Server-Sent Events stream, or a page with Accept: application/json",
                "description": (
                    "As a stream (`Accept: text/event-stream`, the default): every stored event after the "
                    "cursor, then each new one as it is stored, as `id: <event id>`, `event: <type>`, "
                    "`data: <the Event as JSON>`; a `: keep-alive` comment every 15 s when quiet. A client "
                    "that reconnects sends `Last-Event-ID` and misses nothing. With "
                    "`Accept: application/json`: one page (`limit`). A token limited to some agents sees "
                    "only their calls' events. Open streams are limited (`[webhooks] max_streams`): one "
                    "more is refused with 503 `too-many-streams`. An unknown parameter, one given twice "
                    "or a bad value is a 400 `invalid-request` naming each in `details.fields`; a bad "
                    "`Last-Event-ID` header is named there and in the message as a header."),
                "parameters": [
                    {"name": "after", "in": "query", "required": False,
                     "description": "Events with an id above this (default 0: from the first stored).",
                     "schema": {"type": "integer", "minimum": 0}},
                    {"name": "Last-Event-ID", "in": "header", "required": False,
                     "description": "The last event id received; wins over `after` (SSE reconnection).",
                     "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}},
                    {"name": "call_id", "in": "query", "required": False,
                     "description": "Only this call's events.", "schema": {"type": "string",
                                                                           "pattern": "^[0-9a-f]{32}$"}},
                    {"name": "agent", "in": "query", "required": False,
                     "description": "Only the events of this agent's calls.", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "required": False,
                     "description": "Page size (JSON form only).",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
                ],
                "responses": {
                    "200": {"description": "The stream, or the page.",
                            "content": {_SSE: {"schema": {"type": "string"}},
                                        _JSON: {"schema": _ref("EventPage")}}},
                    "400": r400, "401": r401, "429": r429, "503": r503,
                },
            },
        },
    }


def event_webhooks() -> dict:
    """The webhook every ``[[webhooks.endpoints]]`` URL and ``status_callback`` receives."""
    return {
        "callEvent": {
            "post": {
                "operationId": "callEvent",
                "tags": ["events"],
                "summary": "A call event, POSTed to a webhook endpoint",
                "description": (
                    "One event per request, in order per call. `X-Platforma-Signature: t=<unix seconds>,"
                    "v1=<hex>`: `v1` is HMAC-SHA256 keyed with the endpoint's secret over `<t>.<the raw "
                    "body>`; check it, and refuse an old `t`. Answer 2xx once stored; anything else (or "
                    "no answer within `[webhooks] timeout_s`) is retried with capped exponential backoff "
                    "for up to `[webhooks] retry_for_s`. At least once: deduplicate with "
                    "`X-Platforma-Event-Id`. Receiver examples: docs/events.md."),
                "security": [],
                "parameters": [
                    {"name": "X-Platforma-Event-Id", "in": "header", "required": True,
                     "description": "The event's id.", "schema": {"type": "string", "pattern": "^[0-9]+$"}},
                    {"name": "X-Platforma-Signature", "in": "header", "required": True,
                     "description": "`t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>`.",
                     "schema": {"type": "string", "pattern": "^t=[0-9]+,v1=[0-9a-f]{64}$"}},
                ],
                "requestBody": {"required": True, "content": {_JSON: {"schema": _ref("Event")}}},
                "responses": {"2XX": {"description": "Received; not sent again."},
                              "default": {"description": "Not received; sent again later."}},
            },
        },
    }
