"""CORS for browser-based CRMs (``[http] cors_origins``, off by default) and the
request id (``X-Request-Id``) of every answer.

CORS is Flask-Cors, limited to ``/click2dial/*`` and to the configured
origins. A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is
answered before authentication: a browser sends it without the token.

The request id is the client's ``X-Request-Id`` when it is safe
(:data:`platforma_c2d.contract.REQUEST_ID_PATTERN`: letters, digits and
``. _ ~ : / + = -``, at most 128 characters), else one made here (32 hex
characters). It is echoed on the answer and put on every log line written
while the request is served (:func:`platforma_c2d.logs.request_id_var`),
also by the telephony thread's work for it.
"""

from __future__ import annotations

import re
import uuid

from flask import Flask, g, request
from flask_cors import CORS

from platforma_c2d import contract
from platforma_c2d.logs import request_id_var

_SAFE_ID = re.compile(contract.REQUEST_ID_PATTERN.strip("^$"))

#: Headers a browser page may send, and read from the answer.
ALLOW_HEADERS = ["Authorization", "Content-Type", contract.IDEMPOTENCY_KEY_HEADER, contract.REQUEST_ID_HEADER]
EXPOSE_HEADERS = ["Location", "Retry-After", contract.REPLAYED_HEADER, contract.REQUEST_ID_HEADER,
                  contract.API_VERSION_HEADER]


def is_preflight() -> bool:
    """Whether the current request is a CORS preflight (no token is sent with one)."""
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def request_id(header: str | None) -> str:
    """The request's id: ``header`` when it is safe to log and echo, else a new one."""
    if header and _SAFE_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def install(app: Flask, cors_origins: tuple[str, ...]) -> None:
    """Set up CORS for ``cors_origins`` (none: off) and the request id on ``app``."""
    if cors_origins:
        CORS(app, resources={rf"{contract.PREFIX}/*": {"origins": list(cors_origins)}},
             methods=["GET", "POST", "DELETE"], allow_headers=ALLOW_HEADERS, expose_headers=EXPOSE_HEADERS,
             supports_credentials=False, max_age=600, vary_header=True)

    @app.before_request
    def _request_id():
        g.request_id = request_id(request.headers.get(contract.REQUEST_ID_HEADER))
        g.request_id_token = request_id_var.set(g.request_id)

    @app.after_request
    def _echo(resp):
        resp.headers[contract.REQUEST_ID_HEADER] = g.get("request_id") or request_id(None)
        resp.headers[contract.API_VERSION_HEADER] = contract.API_VERSION
        return resp

    @app.teardown_request
    def _forget(_exc):
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id_var.reset(token)
