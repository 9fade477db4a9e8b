"""``GET /click2dial/events`` (SPEC §10): the call events as Server-Sent Events, or as a JSON page.

A stream reads the store, never the telephony thread: it sends what is
stored after the client's cursor (``Last-Event-ID``, else ``?after=``),
then waits on the shared :class:`~platforma_c2d.store.outbox.EventFeed`
for more, with a keep-alive comment every ``KEEPALIVE_S`` seconds. Each
open stream holds one HTTP worker thread: ``[webhooks] max_streams`` caps
them below ``[http] threads``.
"""

from __future__ import annotations

import time

from flask import Response, current_app, jsonify, request, stream_with_context

from platforma_c2d import rules
from platforma_c2d.calls.errors import InvalidRequest, TooManyStreams
from platforma_c2d.http.calls import bp
from platforma_c2d.store.outbox import event_dict, event_json

KEEPALIVE_S = 15.0
MAX_EVENTS_PAGE = 500
_MAX_ID = 10**18


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not lo <= int(raw) <= hi:
        raise InvalidRequest(f"bad {name}", {"fields": {name: f"an integer from {lo} to {hi}"}})
    return int(raw)


def _filters() -> tuple[str | None, tuple[str, ...] | None]:
    """``(call_id, agents)`` from ``?call_id=``, ``?agent=`` and the caller's token;
    ``agents`` None when the filters leave nothing to see."""
    call_id, agent = request.args.get("call_id"), request.args.get("agent")
    bad = {}
    if call_id is not None and not (len(call_id) == 32 and all(c in "0123456789abcdef" for c in call_id)):
        bad["call_id"] = "32 lowercase hex characters (a call id)"
    if agent is not None and not rules.is_agent(agent):
        bad["agent"] = rules.AGENT_FORMATS
    if bad:
        raise InvalidRequest("bad event filter", {"fields": bad})
    allowed = request.environ["c2d.caller"].agents
    if agent is not None:
        return call_id, ((agent,) if not allowed or agent in allowed else None)
    return call_id, tuple(allowed)


def _cursor() -> int:
    last = request.headers.get("Last-Event-ID")
    if last is not None:
        last = last.strip()
        if not (last.isascii() and last.isdigit() and int(last) <= _MAX_ID):
            raise InvalidRequest("bad Last-Event-ID", {"fields": {"Last-Event-ID": "an event id"}})
        return int(last)
    return _int_arg("after", 0, 0, _MAX_ID)


@bp.get("/events")
def events():
    """The events after the cursor: a JSON page (``Accept: application/json``) or a stream."""
    after = _cursor()
    call_id, agents = _filters()
    outbox = current_app.extensions["c2d.outbox"]
    wants_json = (request.accept_mimetypes.best_match(["text/event-stream", "application/json"])
                  == "application/json")
    if wants_json:
        limit = _int_arg("limit", 100, 1, MAX_EVENTS_PAGE)
        rows = outbox.read(after, limit + 1, call_id, agents) if agents is not None else []
        page = [event_dict(r) for r in rows[:limit]]
        return jsonify({"events": page, "after": after, "next_after": page[-1]["id"] if page else after,
                        "more": len(rows) > limit})
    feed = current_app.extensions["c2d.event_feed"]
    if not feed.acquire():
        raise TooManyStreams("too many event streams are open; try again later",
                             {"max_streams": feed.max_streams})

    def stream():
        try:
            yield b"retry: 2000\n\n"
            cursor, quiet_since = after, time.monotonic()
            seen = feed.last_id
            while True:
                rows = outbox.read(cursor, 100, call_id, agents) if agents is not None else []
                for row in rows:
                    yield b"id: %d\nevent: %s\ndata: %s\n\n" % (row["id"], row["type"].encode(), event_json(row))
                    cursor = row["id"]
                if rows:
                    quiet_since = time.monotonic()
                    if len(rows) == 100:
                        continue
                left = KEEPALIVE_S - (time.monotonic() - quiet_since)
                if left <= 0:
                    yield b": keep-alive\n\n"
                    quiet_since = time.monotonic()
                    continue
                seen = feed.wait(seen, left)
        finally:
            feed.release()

    return Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
