"""Abuse of the HTTP API's open doors, against the real service: event
streams held by one token, guessed tokens, ``/metrics``, bad resume headers
(docs/security.md, "The HTTP API")."""

from __future__ import annotations

import hashlib
import time
from contextlib import ExitStack

import httpx

SSE = {"Accept": "text/event-stream"}
CRM, BOARD = "token-of-the-crm-0123456789", "token-of-the-board-0123456789"
TOKENS = {"auth": {"token": [{"sha256": hashlib.sha256(t.encode()).hexdigest(), "name": n}
                             for t, n in ((CRM, "crm"), (BOARD, "board"))]}}


def auth(token: str) -> dict:
    """The ``Authorization`` header of ``token``."""
    return {"Authorization": f"Bearer {token}"}


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


def test_one_token_cannot_hold_every_event_stream(asterisk, make_service):
    """With ``max_streams = 4`` and ``max_streams_per_token = 2``, a token's
    third stream is refused (503 ``too-many-streams``, ``scope: token``,
    ``Retry-After``) while another token still opens its own; a closed
    stream gives the token's place back."""
    service = make_service({**TOKENS, "webhooks": {"max_streams": 4, "max_streams_per_token": 2}})
    with httpx.Client(base_url=service.url, timeout=10) as client, ExitStack() as held:
        readers = []    # each stream's reader kept: a reader dropped half-read closes its connection
        for _ in range(2):
            resp = held.enter_context(client.stream("GET", "/click2dial/events", headers={**SSE, **auth(CRM)}))
            assert resp.status_code == 200
            readers.append(resp.iter_raw())
            assert next(readers[-1]).startswith(b"retry:")
        refused = client.get("/click2dial/events", headers={**SSE, **auth(CRM)})
        assert refused.status_code == 503, refused.text
        body = refused.json()
        assert body["error"] == "too-many-streams" and body["details"]["scope"] == "token", body
        assert body["details"]["max_streams_per_token"] == 2 and "this token" in body["message"], body
        assert refused.headers["Retry-After"].isdigit(), refused.headers
        # The other token is not locked out by the first one's streams.
        with client.stream("GET", "/click2dial/events", headers={**SSE, **auth(BOARD)}) as other:
            assert other.status_code == 200
    # Both of the first token's streams closed: it may open one again.
    with httpx.Client(base_url=service.url, timeout=10) as client:
        for _ in range(50):
            with client.stream("GET", "/click2dial/events", headers={**SSE, **auth(CRM)}) as again:
                if again.status_code == 200:
                    break
            time.sleep(0.1)
        assert again.status_code == 200


SCRAPER = "scrape-token-of-prometheus-0123"


def from_address(service, address: str) -> httpx.Client:
    """A client of ``service`` whose connections come from ``address`` (another
    loopback address: another host, as the service sees it)."""
    return httpx.Client(base_url=service.url, timeout=10,
                        transport=httpx.HTTPTransport(local_address=address))


def test_metrics_are_served_to_allowed_addresses_and_the_scrape_token_only(asterisk, make_service):
    """``/metrics`` from 127.0.0.2 with ``allow_from = ["127.0.0.1"]``: 403
    while no scrape token is configured; with one, 401 without it (an API
    token is not it) and 200 with it. 127.0.0.1 is served without a token;
    every refusal is counted."""
    closed = make_service({**TOKENS, "metrics": {"allow_from": ["127.0.0.1"]}}, name="closed")
    with from_address(closed, "127.0.0.2") as stranger:
        r = stranger.get("/metrics")
        assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
        assert "c2d_calls_total" not in r.text
        assert stranger.get("/healthz").status_code == 200          # probes stay open
    local = httpx.get(closed.url + "/metrics", timeout=10)
    assert local.status_code == 200 and 'c2d_requests_rejected_total{error="forbidden"} 1.0' in local.text
    closed.stop()

    scraped = make_service({**TOKENS, "metrics": {"allow_from": ["127.0.0.1"],
                                                  "token_sha256": hashlib.sha256(SCRAPER.encode()).hexdigest()}},
                           name="token")
    with from_address(scraped, "127.0.0.2") as stranger:
        for headers in ({}, auth(CRM), auth("not-the-scrape-token")):
            r = stranger.get("/metrics", headers=headers)
            assert r.status_code == 401 and r.json()["error"] == "unauthorized", (headers, r.text)
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        r = stranger.get("/metrics", headers=auth(SCRAPER))
        assert r.status_code == 200 and "c2d_calls_total" in r.text, r.text
        assert 'c2d_requests_rejected_total{error="unauthorized"} 3.0' in r.text


def test_guessing_tokens_is_limited_per_address_and_never_locks_out_another(asterisk, make_service):
    """``failed_auth_per_minute = 5``: after five 401s from 127.0.0.2 its
    requests with a token, even the good one, are 429 ``rate-limited``
    (``failed-authentication``, ``Retry-After``) and counted; the good token
    from 127.0.0.1 is served all along; the pages' login form from
    127.0.0.3 is limited the same way."""
    service = make_service({**TOKENS, "limits": {"failed_auth_per_minute": 5}})
    with from_address(service, "127.0.0.2") as guesser, from_address(service, "127.0.0.3") as login:
        for i in range(5):
            r = guesser.get("/click2dial/calls", headers=auth(f"guess-{i}"))
            assert r.status_code == 401, r.text
        for headers in (auth("guess-5"), auth(CRM)):
            r = guesser.get("/click2dial/calls", headers=headers)
            assert r.status_code == 429, r.text
            body = r.json()
            assert body["error"] == "rate-limited" and body["details"]["kind"] == "failed-authentication", body
            assert 0 < int(r.headers["Retry-After"]) <= 60, r.headers
        # Another address, the good token: served as ever.
        ok = httpx.get(service.url + "/click2dial/calls", headers=auth(CRM), timeout=10)
        assert ok.status_code == 200, ok.text
        # The pages' login form, guessed from a third address.
        answers = [login.post("/click2dial/pages/session", json={"token": f"guess-{i}"}).status_code
                   for i in range(6)]
        assert answers == [401] * 5 + [429], answers
        r = login.post("/click2dial/pages/session", json={"token": CRM})
        assert r.status_code == 429 and "c2d_page" not in r.cookies, r.text
    metrics = httpx.get(service.url + "/metrics", timeout=10).text
    assert 'c2d_requests_rejected_total{error="rate-limited"} 4.0' in metrics, metrics
