"""Pages for people (SPEC §13): the agent's browser phone and the supervisors' board.

``GET /click2dial/phone/`` and ``GET /click2dial/board/`` serve static HTML;
their scripts and styles, and SIP.js (0.21, ES modules, shipped in the
package: ``static/vendor/sip.js/SOURCE.md``), come from ``/click2dial/assets/``.
No build step, no third-party origin. The HTML holds no data: everything
comes from the API with the page session of ``http/sessions.py``, opened by
the login form of each page.

Every answer of this blueprint carries a strict Content-Security-Policy:
scripts, styles and images from the service only, no inline script or
style, and connections only to the service and to the configured SIP
WebSocket URLs (``[pages] websocket_urls``).

``GET /click2dial/rules`` publishes the input rules of SPEC §1 (patterns,
accepted formats, message templates) from the one place they are declared
(``rules.py``, ``contract.py``), so that the phone checks a number and a
call_ref before dialling and refuses them with the API's own words.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, make_response, request

from platforma_c2d import contract, rules
from platforma_c2d.http.calls import load_json_body
from platforma_c2d.http.sessions import COOKIE, COOKIE_PATH, request_caller

bp = Blueprint("pages", __name__, url_prefix="/click2dial", static_folder="static",
               static_url_path="/assets")

PUBLIC_ENDPOINTS = ("pages.phone", "pages.board", "pages.static", "pages.rules",
                    "pages.session_state", "pages.open_session", "pages.close_session")


def content_security_policy(websocket_urls) -> str:
    """The pages' CSP: everything from the service itself, WebSocket
    connections to ``websocket_urls`` too, no inline code, no framing."""
    connect = " ".join(["'self'", *websocket_urls])
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; media-src 'self' blob: mediastream:; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'")


def field_rules() -> dict:
    """SPEC §1 for clients that check before they send: per field its
    ECMA-262 ``pattern`` (as in the OpenAPI document) and accepted
    ``formats`` (as in the API's messages), plus the message templates."""
    return {
        "fields": {
            "agent": {"pattern": contract.AGENT_PATTERN, "formats": rules.AGENT_FORMATS},
            "callee": {"pattern": contract.CALLEE_PATTERN, "formats": rules.CALLEE_FORMATS},
            "outbound_id": {"pattern": contract.OUTBOUND_ID_PATTERN, "formats": rules.OUTBOUND_ID_FORMATS},
            "call_ref": {"pattern": contract.CALL_REF_PATTERN, "formats": rules.CALL_REF_FORMATS,
                         "max_length": rules.CALL_REF_MAX},
        },
        "messages": {"required": rules.MSG_REQUIRED, "invalid_value": rules.MSG_INVALID_VALUE,
                     "invalid_character": rules.MSG_INVALID_CHARACTER, "value_cut": rules.MSG_VALUE_CUT,
                     "value_shown_max": rules.SHOW_MAX},
    }


def _config():
    return current_app.extensions["c2d.config"]


@bp.before_request
def _authenticate():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    caller = request_caller(current_app.extensions["c2d.auth"], current_app.extensions.get("c2d.sessions"),
                            request)
    request.environ["c2d.caller"] = caller
    limiter = current_app.extensions.get("c2d.limiter")
    if limiter is not None:
        limiter.hit(caller.name, write=request.method not in ("GET", "HEAD"))


@bp.after_request
def _security_headers(resp):
    resp.headers["Content-Security-Policy"] = content_security_policy(_config().pages.websocket_urls)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "pages.static":
        resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/phone/")
def phone():
    """The agent's browser phone (``?callee=…&call_ref=…`` prefill the dial form)."""
    return bp.send_static_file("phone.html")


@bp.get("/board/")
def board():
    """The supervisors' live board of calls."""
    return bp.send_static_file("board.html")


@bp.get("/rules", endpoint="rules")
def rules_json():
    """The input rules of SPEC §1 as JSON (:func:`field_rules`)."""
    return jsonify(field_rules())


@bp.get("/pages/session")
def session_state():
    """``{"active": bool}``: whether this browser has a valid page session
    (the pages ask before showing the login form; never 401). Always
    active when no token is configured (auth off)."""
    if not current_app.extensions["c2d.auth"].enabled:
        return jsonify({"active": True})
    caller = current_app.extensions["c2d.sessions"].caller(request.cookies.get(COOKIE))
    return jsonify({"active": caller is not None})


@bp.post("/pages/session")
def open_session():
    """Exchange ``{"token": "<API token>"}`` for the page-session cookie; 401 for a bad token."""
    body = load_json_body()
    caller, cookie = current_app.extensions["c2d.sessions"].open(
        body.get("token") if isinstance(body, dict) else None)
    limiter = current_app.extensions.get("c2d.limiter")
    if limiter is not None:
        limiter.hit(caller.name, write=True)
    ttl = _config().pages.session_ttl_s
    resp = jsonify({"caller": caller.name, "expires_in_s": ttl})
    resp.set_cookie(COOKIE, cookie, max_age=ttl, path=COOKIE_PATH, httponly=True, samesite="Strict",
                    secure=request.is_secure)
    return resp


@bp.delete("/pages/session")
def close_session():
    """Log out: the cookie is removed (204)."""
    resp = make_response("", 204)
    resp.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=request.is_secure)
    return resp


@bp.get("/pages/config")
def page_config():
    """What the pages need: who is logged in, the SIP WebSocket URLs, the
    default CLID and ``[clid] allowed``, where the board's stream starts."""
    cfg, caller = _config(), request.environ["c2d.caller"]
    clid, outbox = cfg.clid, current_app.extensions.get("c2d.outbox")
    return jsonify({
        "caller": caller.name,
        "auth": current_app.extensions["c2d.auth"].enabled,
        "agents": list(caller.agents),
        "session_ttl_s": cfg.pages.session_ttl_s,
        "sip": {"websocket_urls": list(cfg.pages.websocket_urls), "domain": cfg.pages.sip_domain,
                "ice_servers": list(cfg.pages.ice_servers)},
        # The pools and their numbers are GET /click2dial/clids; here what it does not say.
        "clids": {"default": clid.default, "allowed": list(clid.allowed)},
        # Where the board's event stream starts (null: no stream, the board polls).
        "last_event_id": outbox.last_id() if outbox is not None else None,
    })
