"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from platforma_c2d.contract import MAX_BODY_BYTES
from platforma_c2d.http import calls, clids, cors, ops, pages
from platforma_c2d.http.auth import Authenticator
from platforma_c2d.http.errors import register_error_handlers
from platforma_c2d.http.sessions import PageSessions


def create_app(service, config, metrics, limiter=None) -> Flask:
    """Build the Flask app around a ``CallService``.

    ``config``: the service ``Config`` (``[auth]``, ``[pages]`` and ``[clid]`` are used here);
    ``metrics``: ``Metrics`` for ``/metrics``; ``limiter``: optional object
    with ``hit(caller_name)`` raising ``RateLimited``.
    """
    app = Flask("platforma_c2d")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    app.extensions["c2d.service"] = service
    app.extensions["c2d.config"] = config
    app.extensions["c2d.auth"] = auth = Authenticator(config.auth)
    app.extensions["c2d.sessions"] = PageSessions(auth, config.pages.session_ttl_s)
    app.extensions["c2d.metrics"] = metrics
    app.extensions["c2d.limiter"] = limiter
    app.register_blueprint(calls.bp)
    app.register_blueprint(clids.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(pages.bp)
    register_error_handlers(app, on_rejected=lambda error: metrics.rejected.labels(error).inc())
    cors.install(app, config.http.cors_origins)
    return app
