"""``GET /click2dial/clids`` (SPEC §12): the CLID pools, their policies and number health."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from platforma_c2d.http.calls import _authenticate

bp = Blueprint("clids", __name__, url_prefix="/click2dial")
bp.before_request(_authenticate)   # the same bearer token and rate limit as /calls


@bp.get("/clids")
def list_clids():
    service = current_app.extensions["c2d.service"]
    return jsonify({"pools": service.clid_pools(request.environ["c2d.caller"])})
