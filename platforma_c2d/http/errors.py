"""The one place where errors become HTTP responses (SPEC §2 error format)."""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from platforma_c2d import contract
from platforma_c2d.calls.errors import C2DError

log = logging.getLogger("platforma_c2d.http")

#: Warning lines a second, at most, about requests refused before
#: authentication (401): a flood of bad tokens must not flood the log.
UNAUTHORIZED_LINES_PER_S = 5


class LogThrottle:
    """At most ``per_s`` log lines a second; says how many were left out.

    ``allow()`` returns ``None`` when this line must be left out, else the
    number of lines left out since the last one allowed (an int, 0 when
    none). Thread-safe (waitress' worker threads).
    """

    def __init__(self, per_s: int, clock=time.monotonic):
        self.per_s, self.clock = per_s, clock
        self._lock = threading.Lock()
        self._second, self._count, self._skipped = -1, 0, 0

    def allow(self) -> int | None:
        """See the class docstring."""
        with self._lock:
            second = int(self.clock())
            if second != self._second:
                self._second, self._count = second, 0
            if self._count >= self.per_s:
                self._skipped += 1
                return None
            self._count += 1
            skipped, self._skipped = self._skipped, 0
            return skipped


def error_response(status: int, error: str, message: str, details: dict | None = None, headers=None):
    """``{"error", "message", "details"}`` JSON with ``status``."""
    resp = jsonify({"error": error, "message": message, "details": details or {}})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def http_refusal(exc: HTTPException) -> tuple[str, str, dict]:
    """(error id, message, details) of a refusal made by the framework before our
    handlers ran: no such route (404), a method the route does not take (405,
    with the methods it does), a body over the limit (413)."""
    path = ascii(request.path[:80])[1:-1]
    if exc.code == 404:
        return "not-found", f"no route {path}; the routes are in {contract.PREFIX}/openapi.json", {}
    if exc.code == 405:
        allowed = sorted(m for m in (getattr(exc, "valid_methods", None) or ()) if m not in ("HEAD", "OPTIONS"))
        return ("method-not-allowed", f"{request.method} is not taken by {path}; it takes {', '.join(allowed)}",
                {"allowed": allowed})
    if exc.code == 413:
        return "request-too-large", contract.ERRORS["request-too-large"].meaning, {}
    return "http-error", exc.name, {}


def register_error_handlers(app: Flask, on_rejected=None) -> None:
    """Map ``C2DError`` and werkzeug's HTTP errors to JSON; anything else to a 500 without internals."""

    unauthorized_lines = LogThrottle(UNAUTHORIZED_LINES_PER_S)

    @app.errorhandler(C2DError)
    def _c2d(exc: C2DError):
        if on_rejected:
            on_rejected(exc.error)
        # Audit trail: every refusal, with who asked (token name, never the
        # token); refusals before authentication at a bounded rate, with
        # how many lines were left out (the metric counts every one).
        guessing = exc.error == "unauthorized" or exc.details.get("kind") == "failed-authentication"
        skipped = unauthorized_lines.allow() if guessing else 0
        if skipped is None:
            return error_response(exc.status, exc.error, exc.message, exc.details, exc.headers)
        caller = request.environ.get("c2d.caller")
        log.warning("API request refused: %s %s -> %s %s", request.method, request.path[:80],
                    exc.status, exc.error,
                    extra={"event": "api_refused",
                           "fields": {"error": exc.error, "token": getattr(caller, "name", None),
                                      "remote": request.remote_addr, "hint": exc.hint or None,
                                      "details": sorted(exc.details.get("fields", exc.details))[:10],
                                      **({"lines_left_out": skipped} if skipped else {})}})
        return error_response(exc.status, exc.error, exc.message, exc.details, exc.headers)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        # The framework's own refusals, in our words and format (never its stock text).
        name, message, details = http_refusal(exc)
        if on_rejected:
            on_rejected(name)
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return error_response(exc.code or 500, name, message, details, headers=headers)

    @app.errorhandler(Exception)
    def _other(exc: Exception):
        log.exception("unhandled error in an API request")
        return error_response(500, "internal-error", "internal error; see the service log")
