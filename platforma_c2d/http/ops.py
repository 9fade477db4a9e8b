"""Operations routes: ``/healthz`` and ``/metrics`` (SPEC §2)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from prometheus_client import CONTENT_TYPE_LATEST

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


@bp.get("/metrics")
def metrics():
    """Prometheus text format."""
    return Response(current_app.extensions["c2d.metrics"].render(), content_type=CONTENT_TYPE_LATEST)
