"""Failed authentications, limited per source address (docs/security.md).

A client that presents credentials (an ``Authorization`` header, or a
token posted to the pages' login, ``POST /click2dial/pages/session``) and
is answered 401 has failed once. After ``per_minute`` failures from one
address within 60 s, every request from that address that presents
credentials is answered 429 ``rate-limited`` (``details.kind``
``failed-authentication``, ``Retry-After``) before its token is looked
at, until the oldest failure is a minute old; the refusals are counted in
``c2d_requests_rejected{error="rate-limited"}``. Other addresses are not
affected, so a token guesser cannot lock out a CRM elsewhere. Requests
without credentials (an expired page session) are neither counted nor
refused here.

Thread-safe: waitress' worker threads call in; the windows are kept
under one lock local to this object (request accounting, not call state).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from flask import Flask, request

from platforma_c2d.calls.errors import RateLimited
from platforma_c2d.http.limits import WINDOW_S, prune, retry_after_s

#: The pages' login, where a token is posted in the body.
LOGIN_ENDPOINT = "pages.open_session"
#: Addresses kept at most; past it, those without a failure in the window are forgotten.
MAX_ADDRESSES = 10_000


def presents_credentials() -> bool:
    """Whether the current Flask request tries to authenticate: an
    ``Authorization`` header, or the pages' login."""
    return "Authorization" in request.headers or (request.endpoint == LOGIN_ENDPOINT
                                                  and request.method == "POST")


class FailedAuthLimiter:
    """At most ``per_minute`` failed authentications per source address in
    any 60 s window (0 = no limit). ``clock``: monotonic seconds."""

    WINDOW_S = WINDOW_S

    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute, self.clock = per_minute, clock
        self._failures: dict[str, deque] = {}
        self._lock = threading.Lock()

    def _window(self, address: str, now: float) -> deque | None:
        q = self._failures.get(address)
        return None if q is None else prune(q, now, self.WINDOW_S)

    def check(self, address: str) -> None:
        """Raise ``RateLimited`` (429, ``Retry-After`` in seconds) when
        ``address`` has failed ``per_minute`` times within the window."""
        if not self.per_minute:
            return
        now = self.clock()
        with self._lock:
            q = self._window(address, now)
            if q is None or len(q) < self.per_minute:
                return
            retry = retry_after_s(q, now, self.WINDOW_S)
        raise RateLimited(f"too many failed authentications from this address; retry after {retry} s",
                          {"kind": "failed-authentication", "limit_per_minute": self.per_minute},
                          headers={"Retry-After": str(retry)},
                          hint="[limits] failed_auth_per_minute; a token guesser, or a client with a wrong token")

    def failed(self, address: str) -> None:
        """Count one failed authentication of ``address``."""
        if not self.per_minute:
            return
        now = self.clock()
        with self._lock:
            if len(self._failures) >= MAX_ADDRESSES and address not in self._failures:
                for known in [a for a, q in self._failures.items() if not q or now - q[-1] >= self.WINDOW_S]:
                    del self._failures[known]
            self._failures.setdefault(address, deque(maxlen=self.per_minute)).append(now)


def install(app: Flask, limiter: FailedAuthLimiter) -> None:
    """Refuse requests with credentials from an address over its limit
    before anything else looks at them, and count each 401 answered to a
    request with credentials."""

    @app.before_request
    def _refuse_guessers():
        if presents_credentials():
            limiter.check(request.remote_addr or "")

    @app.after_request
    def _count_failures(resp):
        if resp.status_code == 401 and presents_credentials():
            limiter.failed(request.remote_addr or "")
        return resp
