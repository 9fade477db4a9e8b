"""Page sessions: the API token exchanged for a short-lived cookie (SPEC §13).

The phone and board pages must not carry a token in their URL (it would end
up in logs and in the browser's history), and ``EventSource`` cannot send an
``Authorization`` header. So the page's login form posts the API token once
to ``POST /click2dial/pages/session``; the answer sets the cookie
``c2d_page`` (HttpOnly, SameSite=Strict, Path=/click2dial, Secure over
HTTPS) holding the token's *name* and the time it was issued, signed with
itsdangerous (HMAC-SHA1 over a key drawn at start-up). Nothing in it can be
used as a token elsewhere, and a restart of the service ends every session.

The cookie stands for its token only on ``GET``/``HEAD`` requests: it can
read calls, the event stream and the pages' configuration, never place or
cancel a call (a write needs the ``Authorization`` header). With
SameSite=Strict the browser never sends it from another site's page.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from platforma_c2d.calls.service import Caller
from platforma_c2d.http.auth import Authenticator

COOKIE = "c2d_page"
COOKIE_PATH = "/click2dial"
READ_METHODS = ("GET", "HEAD")


class PageSessions:
    """Issues and checks page-session cookies for the tokens of ``auth``.

    ``ttl_s``: lifetime of a session in seconds (``[pages] session_ttl_s``);
    ``clock``: seconds since the epoch (tests pass their own).
    """

    def __init__(self, auth: Authenticator, ttl_s: int, clock: Callable[[], float] = time.time):
        self.auth, self.ttl_s = auth, ttl_s

        class _Signer(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        self._clock = clock
        self._serializer = URLSafeTimedSerializer(secrets.token_bytes(32), salt="c2d-page-session",
                                                  signer=_Signer)

    def open(self, token: object) -> tuple[Caller, str]:
        """Exchange an API token for a session: ``(caller, cookie value)``.

        Raises ``Unauthorized`` (401) when ``token`` is not a configured
        token (or not a string). With no token configured (auth off) every
        login succeeds as the anonymous caller.
        """
        text = token if isinstance(token, str) else ""
        caller = self.auth.authenticate(f"Bearer {text}" if text else None)
        return caller, self._serializer.dumps({"n": caller.name})

    def caller(self, cookie: str | None) -> Caller | None:
        """The caller of a valid, unexpired cookie; ``None`` otherwise.

        A session of a token no longer configured is invalid.
        """
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.ttl_s)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("n"), str):
            return None
        return self.auth.by_name(data["n"])


def request_caller(auth: Authenticator, sessions: PageSessions | None, request) -> Caller:
    """The caller of a Flask ``request``: the ``Authorization`` header when
    given, else for ``GET``/``HEAD`` a valid page-session cookie.

    Raises ``Unauthorized`` (401) when neither identifies a caller.
    """
    header = request.headers.get("Authorization")
    if header is None and sessions is not None and request.method in READ_METHODS:
        caller = sessions.caller(request.cookies.get(COOKIE))
        if caller is not None:
            return caller
    return auth.authenticate(header)
