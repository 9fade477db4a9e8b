"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from platforma_c2d.contract import MAX_BODY_BYTES, SANDBOX_HEADER
from platforma_c2d.http import calls, clids, cors, events, ops, origin, pages  # noqa: F401 - events adds its route to calls.bp
from platforma_c2d.http import failed_auth
from platforma_c2d.http.auth import Authenticator
from platforma_c2d.http.failed_auth import FailedAuthLimiter
from platforma_c2d.http.errors import register_error_handlers
from platforma_c2d.http.sessions import PageSessions
from platforma_c2d.store.outbox import EventFeed, Outbox


def create_app(service, config, metrics, limiter=None, outbox=None, event_feed=None,
               sandbox: bool = False) -> Flask:
    """Build the Flask app around a ``CallService``.

    ``config``: the service ``Config`` (``[auth]``, ``[pages]`` and ``[clid]`` are used here);
    ``metrics``: ``Metrics`` for ``/metrics``; ``limiter``: optional object
    with ``hit(caller_name)`` raising ``RateLimited``; ``outbox``, ``event_feed``: the
    store's events and the feed that wakes event streams (``GET /click2dial/events``;
    built on the service's journal when None); ``sandbox``: every
    answer says it comes from the sandbox (``X-Platforma-Sandbox: true``, and
    ``/healthz``), never from a real PBX.
    """
    app = Flask("platforma_c2d")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    app.extensions["c2d.service"] = service
    app.extensions["c2d.config"] = config
    app.extensions["c2d.auth"] = auth = Authenticator(config.auth)
    app.extensions["c2d.sessions"] = PageSessions(auth, config.pages.session_ttl_s)
    app.extensions["c2d.metrics"] = metrics
    app.extensions["c2d.scrapers"] = ops.scrape_authenticator(config.metrics)
    app.extensions["c2d.limiter"] = limiter
    if outbox is None and hasattr(service, "journal"):
        outbox = Outbox(service.journal.engine)
    if event_feed is None and outbox is not None:
        event_feed = EventFeed(outbox, config.webhooks.max_streams,
                               max_per_holder=config.webhooks.max_streams_per_token)
    app.extensions["c2d.outbox"] = outbox
    app.extensions["c2d.event_feed"] = event_feed
    app.extensions["c2d.sandbox"] = sandbox
    app.register_blueprint(calls.bp)
    app.register_blueprint(clids.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(pages.bp)
    register_error_handlers(app, on_rejected=lambda error: metrics.rejected.labels(error).inc())
    cors.install(app, config.http.cors_origins)
    failed_auth.install(app, FailedAuthLimiter(config.limits.failed_auth_per_minute))
    origin.install(app, config.auth.any_token)
    if sandbox:
        @app.after_request
        def _sandbox(resp):
            resp.headers[SANDBOX_HEADER] = "true"
            return resp
    return app
