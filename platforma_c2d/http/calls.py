"""``/click2dial`` routes (SPEC §2). Each handler: load, call the service, dump."""

from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify, request

from platforma_c2d.calls.errors import InvalidJson, InvalidRequest, UnsupportedMediaType
from platforma_c2d.calls.placing import load_place_request
from platforma_c2d.contract import TOTAL_COUNT_MAX
from platforma_c2d.http.cors import is_preflight
from platforma_c2d.http.openapi import openapi_document
from platforma_c2d.http.query import next_cursor, parse_list_query
from platforma_c2d.http.sessions import request_caller

bp = Blueprint("click2dial", __name__, url_prefix="/click2dial")


def _service():
    return current_app.extensions["c2d.service"]


def _no_duplicates(pairs):
    seen: set[str] = set()
    dup = sorted({k for k, _ in pairs if k in seen or seen.add(k)})
    if dup:
        raise InvalidRequest("a field is given twice", {"fields": {k[:40]: "given more than once" for k in dup}})
    return dict(pairs)


class _NotJson(ValueError):
    """NaN, Infinity or -Infinity: Python's json reads them, but they are not JSON."""


def _reject_constant(name):
    raise _NotJson(f"{name} is not JSON")


def _body_problem(text: str) -> dict:
    """``details`` of an error about the body as a whole: under ``fields.body``, like every bad field."""
    return {"fields": {"body": text[:120]}}


def load_json_body() -> object:
    """The request body as JSON (SPEC §2).

    Raises ``UnsupportedMediaType`` (415) when the body is not declared JSON
    (``Content-Type``); ``InvalidJson`` (400 ``invalid-json``) when it is
    declared JSON but is not JSON at all (does not parse, is not UTF-8,
    holds NaN or Infinity); ``InvalidRequest`` (400) for JSON this API refuses: a key
    given twice, nesting too deep, a number Python will not convert (over
    4,300 digits).
    """
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        shown = ascii((request.content_type or "")[:80])
        raise UnsupportedMediaType("the body must be JSON (Content-Type: application/json)",
                                   {"fields": {"Content-Type": f"{shown} is not application/json"}})
    try:
        return json.loads(request.get_data(cache=False).decode("utf-8"),
                          object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, _NotJson) as exc:
        raise InvalidJson("the body is declared JSON but is not valid JSON", _body_problem(str(exc))) from None
    except ValueError as exc:   # JSON, but not for us: an integer of thousands of digits
        raise InvalidRequest("the body holds a value that cannot be read", _body_problem(str(exc))) from None
    except RecursionError:
        raise InvalidRequest("the body is nested too deeply", _body_problem("nested too deeply")) from None


def _caller():
    return request_caller(current_app.extensions["c2d.auth"], current_app.extensions.get("c2d.sessions"), request)


@bp.before_request
def _authenticate():
    if request.endpoint == "click2dial.openapi" or is_preflight():
        return   # open; a browser's preflight carries no token (CORS answers it)
    caller = _caller()
    request.environ["c2d.caller"] = caller
    limiter = current_app.extensions.get("c2d.limiter")
    if limiter is not None:
        limiter.hit(caller.name, write=request.method not in ("GET", "HEAD"))


@bp.post("/calls")
def place_call():
    body = load_json_body()
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= 200 and key.isprintable() and key.isascii()):
        raise InvalidRequest("bad Idempotency-Key", {"fields": {"Idempotency-Key": "1-200 printable ASCII characters"}})
    loaded = load_place_request(body, current_app.extensions["c2d.config"].webhooks.allowed_url_prefixes)
    call, replayed = _service().place_call(loaded, request.environ["c2d.caller"], key)
    resp = jsonify(call)
    resp.status_code = 201
    resp.headers["Location"] = f"/click2dial/calls/{call['id']}"
    if replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


@bp.get("/calls/<call_id>")
def get_call(call_id: str):
    return jsonify(_service().get_call(call_id, request.environ["c2d.caller"]))


@bp.get("/calls/<call_id>/history")
def call_history(call_id: str):
    return jsonify(_service().call_history(call_id, request.environ["c2d.caller"]))


@bp.get("/calls")
def list_calls():
    query = parse_list_query(request.args)
    calls, total, more = _service().list_calls(query, request.environ["c2d.caller"])
    return jsonify({"calls": calls, "total": min(total, TOTAL_COUNT_MAX),
                    "total_exact": total <= TOTAL_COUNT_MAX, "limit": query.limit,
                    "next_cursor": next_cursor(calls, more)})


@bp.delete("/calls/<call_id>")
def cancel_call(call_id: str):
    return jsonify(_service().cancel_call(call_id, request.environ["c2d.caller"]))


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())
