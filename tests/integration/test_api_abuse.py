"""Abuse of the HTTP API's open doors, against the real service: event
streams held by one token, guessed tokens, ``/metrics``, bad resume headers
(docs/security.md, "The HTTP API")."""

from __future__ import annotations

import httpx

SSE = {"Accept": "text/event-stream"}


def test_a_bad_last_event_id_is_named_as_the_header_it_is(asterisk, make_service):
    """A ``Last-Event-ID`` that is no event id is a 400 naming the header,
    never "bad query parameters" (the client would look in its URL)."""
    service = make_service()
    with httpx.Client(base_url=service.url, timeout=10) as client:
        r = client.get("/click2dial/events", headers={**SSE, "Last-Event-ID": "12abc"})
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["error"] == "invalid-request"
        assert "Last-Event-ID header" in body["message"] and "query" not in body["message"], body
        assert "header" in body["details"]["fields"]["Last-Event-ID"], body
        # With a bad query parameter too, each is named for what it is.
        r = client.get("/click2dial/events", params={"after": "x"},
                       headers={**SSE, "Last-Event-ID": "-1"})
        body = r.json()
        assert r.status_code == 400 and set(body["details"]["fields"]) == {"after", "Last-Event-ID"}, body
        assert body["message"] == "bad query parameters: after; bad Last-Event-ID header", body
