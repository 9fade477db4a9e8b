"""``GET /click2dial/events`` (SPEC §10): the call events as Server-Sent Events, or as a JSON page.

A stream reads the store, never the telephony thread: it sends what is
stored after the client's cursor (``Last-Event-ID``, else ``?after=``),
then waits on the shared :class:`~platforma_c2d.store.outbox.EventFeed`
for more, with a keep-alive comment every ``KEEPALIVE_S`` seconds. Each
open stream holds one HTTP worker thread: ``[webhooks] max_streams`` caps
them below ``[http] threads``, and ``max_streams_per_token`` those of one
token (so that one token cannot hold them all). A stream whose client went away ends within
``GONE_CHECK_S`` (the server tells, ``waitress.client_disconnected``), and
gives its thread and its place back.
"""

from __future__ import annotations

import time

from flask import Response, current_app, jsonify, request, stream_with_context

from platforma_c2d import rules
from platforma_c2d.calls.errors import InvalidRequest, TooManyStreams
from platforma_c2d.http.calls import bp
from platforma_c2d.store.outbox import event_dict, event_json

KEEPALIVE_S = 15.0
#: Seconds between two looks at whether a quiet stream's client is still there.
GONE_CHECK_S = 1.0
MAX_EVENTS_PAGE = 500
_MAX_ID = 10**18


#: The query parameters of ``GET /click2dial/events``, each given at most once.
PARAMETERS = ("after", "limit", "call_id", "agent")
#: The header an SSE client resumes with (it wins over ``?after=``).
LAST_EVENT_ID = "Last-Event-ID"


def _int_problem(raw: str, lo: int, hi: int) -> str | None:
    if raw.isascii() and raw.isdigit() and lo <= int(raw) <= hi:
        return None
    return f"an integer from {lo} to {hi}"


def _read_query() -> dict:
    """The checked query: ``after`` (int), ``limit`` (int), ``call_id``, ``agent`` (str or None).

    Raises ``InvalidRequest`` whose ``details.fields`` names every unknown
    parameter, every parameter given twice and every bad value at once
    (SPEC §1, §2); a bad ``Last-Event-ID`` is named as the header it is,
    in ``details.fields`` and in the message.
    """
    args, bad = request.args, {}
    for name in args:
        if name not in PARAMETERS:
            bad[ascii(name[:40])[1:-1]] = "unknown query parameter; known: " + ", ".join(PARAMETERS)
        elif len(args.getlist(name)) > 1:
            bad[name] = "given more than once"
    checks = {"after": lambda v: _int_problem(v, 0, _MAX_ID),
              "limit": lambda v: _int_problem(v, 1, MAX_EVENTS_PAGE),
              "call_id": lambda v: None if len(v) == 32 and all(c in "0123456789abcdef" for c in v)
              else "32 lowercase hex characters (a call id)",
              "agent": lambda v: None if rules.is_agent(v) else rules.AGENT_FORMATS}
    for name, check in checks.items():
        value = args.get(name)
        if value is not None and name not in bad and (problem := check(value)) is not None:
            bad[name] = problem
    parts = ["bad query parameters: " + ", ".join(bad)] if bad else []
    last = request.headers.get(LAST_EVENT_ID)
    if last is not None:
        last = last.strip()
        if (problem := _int_problem(last, 0, _MAX_ID)) is not None:
            # A header, not a query parameter: say so, so the client looks in the right place.
            bad[LAST_EVENT_ID] = f"the {LAST_EVENT_ID} header must be an event id: {problem}"
            parts.append(f"bad {LAST_EVENT_ID} header")
    if bad:
        raise InvalidRequest("; ".join(parts), {"fields": bad})
    return {"after": int(last if last is not None else args.get("after", 0)),
            "limit": int(args.get("limit", 100)), "call_id": args.get("call_id"), "agent": args.get("agent")}


def _filters(query: dict) -> tuple[str | None, tuple[str, ...] | None]:
    """``(call_id, agents)`` from ``?call_id=``, ``?agent=`` and the caller's token;
    ``agents`` None when the filters leave nothing to see."""
    call_id, agent = query["call_id"], query["agent"]
    allowed = request.environ["c2d.caller"].agents
    if agent is not None:
        return call_id, ((agent,) if not allowed or agent in allowed else None)
    return call_id, tuple(allowed)


@bp.get("/events")
def events():
    """The events after the cursor: a JSON page (``Accept: application/json``) or a stream."""
    query = _read_query()
    after = query["after"]
    call_id, agents = _filters(query)
    outbox = current_app.extensions["c2d.outbox"]
    wants_json = (request.accept_mimetypes.best_match(["text/event-stream", "application/json"])
                  == "application/json")
    if wants_json:
        limit = query["limit"]
        rows = outbox.read(after, limit + 1, call_id, agents) if agents is not None else []
        page = [event_dict(r) for r in rows[:limit]]
        return jsonify({"events": page, "after": after, "next_after": page[-1]["id"] if page else after,
                        "more": len(rows) > limit})
    feed = current_app.extensions["c2d.event_feed"]
    # Per token: with authentication off every client is the same anonymous caller.
    holder = request.environ["c2d.caller"].name if current_app.extensions["c2d.auth"].enabled else None
    refused_by = feed.acquire(holder)
    if refused_by == "token":
        raise TooManyStreams("too many event streams are open with this token; close one, or try again "
                             "later", {"scope": "token", "max_streams_per_token": feed.max_per_holder})
    if refused_by is not None:
        raise TooManyStreams("too many event streams are open; try again later",
                             {"scope": "service", "max_streams": feed.max_streams})
    released = []

    def release_once():
        # On close of the answer, which also comes when the body never runs (HEAD, a
        # client gone before it): an unstarted generator's ``finally`` never would.
        if not released:
            released.append(True)
            feed.release(holder)

    gone = request.environ.get("waitress.client_disconnected") or (lambda: False)

    def stream():
        try:
            yield b"retry: 2000\n\n"
            cursor, quiet_since = after, time.monotonic()
            seen = feed.last_id
            while not gone():
                rows = outbox.read(cursor, 100, call_id, agents) if agents is not None else []
                for row in rows:
                    yield b"id: %d\nevent: %s\ndata: %s\n\n" % (row["id"], row["type"].encode(), event_json(row))
                    cursor = row["id"]
                if rows:
                    quiet_since = time.monotonic()
                    if len(rows) == 100:
                        continue
                # Quiet: wait for a newer event, a keep-alive now and then, and
                # look every GONE_CHECK_S whether the client is still there.
                while not gone():
                    left = KEEPALIVE_S - (time.monotonic() - quiet_since)
                    if left <= 0:
                        yield b": keep-alive\n\n"
                        quiet_since = time.monotonic()
                        continue
                    newest = feed.wait(seen, min(left, GONE_CHECK_S))
                    if newest > seen:
                        seen = newest
                        break
        finally:
            release_once()

    resp = Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    resp.call_on_close(release_once)
    return resp
