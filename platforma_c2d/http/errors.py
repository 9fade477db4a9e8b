"""The one place where errors become HTTP responses (SPEC §2 error format)."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from platforma_c2d.calls.errors import C2DError

log = logging.getLogger("platforma_c2d.http")


def error_response(status: int, error: str, message: str, details: dict | None = None, headers=None):
    """``{"error", "message", "details"}`` JSON with ``status``."""
    resp = jsonify({"error": error, "message": message, "details": details or {}})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def register_error_handlers(app: Flask, on_rejected=None) -> None:
    """Map ``C2DError`` and werkzeug's HTTP errors to JSON; anything else to a 500 without internals."""

    @app.errorhandler(C2DError)
    def _c2d(exc: C2DError):
        if on_rejected:
            on_rejected(exc.error)
        # Audit trail: every refusal, with who asked (token name, never the token).
        caller = request.environ.get("c2d.caller")
        log.warning("API request refused: %s %s -> %s %s", request.method, request.path[:80],
                    exc.status, exc.error,
                    extra={"event": "api_refused",
                           "fields": {"error": exc.error, "token": getattr(caller, "name", None),
                                      "remote": request.remote_addr,
                                      "details": sorted(exc.details.get("fields", exc.details))[:10]}})
        return error_response(exc.status, exc.error, exc.message, exc.details, exc.headers)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        name = {404: "not-found", 405: "method-not-allowed", 413: "request-too-large",
                415: "unsupported-media-type"}.get(exc.code, "http-error")
        if on_rejected:
            on_rejected(name)
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return error_response(exc.code or 500, name, exc.description or exc.name, headers=headers)

    @app.errorhandler(Exception)
    def _other(exc: Exception):
        log.exception("unhandled error in an API request")
        return error_response(500, "internal-error", "internal error; see the service log")
