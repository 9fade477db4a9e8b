"""DNS rebinding: with authentication off, only loopback names are served
(docs/security.md).

Authentication may be off only while ``[http] listen`` is a loopback
address. A web page opened in a browser on the same machine can still
reach it: its host name is made to resolve to 127.0.0.1 (DNS rebinding),
and the browser then sends the page's requests, with the page's own host
in ``Host`` (and ``Origin``). So, while no token is configured, a request
whose ``Host`` or ``Origin`` names anything but a loopback address is
refused with 403 ``host-not-allowed``. With tokens, a page has no token to
send, and nothing is checked here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request

from platforma_c2d.calls.errors import HostNotAllowed
from platforma_c2d.config import is_loopback


def _host_of(netloc: str) -> str:
    """The host of ``host[:port]`` / ``[v6]:port``, without brackets."""
    return urlsplit("//" + netloc).hostname or ""


def install(app: Flask, auth_on: bool) -> None:
    """Refuse requests whose ``Host`` or ``Origin`` is not loopback, unless
    ``auth_on`` (a token is configured). Raises ``HostNotAllowed`` from a
    ``before_request`` hook."""
    if auth_on:
        return

    @app.before_request
    def _loopback_only():
        origin = request.headers.get("Origin")
        hosts = [("Host", _host_of(request.host or ""))]
        if origin and origin != "null":
            hosts.append(("Origin", urlsplit(origin).hostname or ""))
        for header, host in hosts:
            if not is_loopback(host):
                raise HostNotAllowed(
                    f"without authentication this service answers only requests to a loopback "
                    f"address; the {header} header names another host",
                    {"header": header},
                    hint="configure a token in [auth] to serve other host names")
