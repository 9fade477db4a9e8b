"""Operations routes: ``/healthz`` and ``/metrics`` (SPEC §2).

``/healthz`` is open (a load balancer's probe has no token). ``/metrics``
is served to the addresses of ``[metrics] allow_from`` (loopback by
default) and to requests with the ``[metrics]`` scrape token, and refused
to anyone else (docs/security.md): the metrics show the traffic and name
the caller IDs.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from prometheus_client import CONTENT_TYPE_LATEST

from platforma_c2d.calls.errors import Forbidden
from platforma_c2d.config import AuthConfig, TokenConfig
from platforma_c2d.http.auth import Authenticator

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    """200 when ARI is connected and the store writable, else 503; JSON either way."""
    health = current_app.extensions["c2d.service"].health()
    if current_app.extensions.get("c2d.sandbox"):
        health["sandbox"] = True    # a simulated PBX: no real call is ever placed
    resp = jsonify(health)
    resp.status_code = 200 if health["status"] == "ok" else 503
    return resp


def scrape_authenticator(metrics_config) -> Authenticator | None:
    """The :class:`Authenticator` of the ``[metrics]`` scrape token (its one
    caller is named ``metrics``); None when no scrape token is configured."""
    if not metrics_config.token_sha256:
        return None
    return Authenticator(AuthConfig(tokens=(TokenConfig(sha256=metrics_config.token_sha256, name="metrics"),)))


def check_scraper() -> None:
    """Let the request scrape, or raise: ``Unauthorized`` (401) when a
    scrape token is configured and the request from an address outside
    ``allow_from`` lacks it (or sends another); ``Forbidden`` (403) when no
    scrape token is configured and the address is outside ``allow_from``."""
    config = current_app.extensions["c2d.config"].metrics
    if config.allows(request.remote_addr):
        return
    scrapers = current_app.extensions.get("c2d.scrapers")
    if scrapers is None:
        raise Forbidden("the metrics are not served to this address",
                        {"fields": {"address": "not allowed to read the metrics"}},
                        hint="list the scraper's address in [metrics] allow_from, or set [metrics] token_sha256")
    scrapers.authenticate(request.headers.get("Authorization"))


@bp.get("/metrics")
def metrics():
    """Prometheus text format, to allowed scrapers (:func:`check_scraper`)."""
    check_scraper()
    return Response(current_app.extensions["c2d.metrics"].render(), content_type=CONTENT_TYPE_LATEST)
