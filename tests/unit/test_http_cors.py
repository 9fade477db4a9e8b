"""CORS ([http] cors_origins, preflight before authentication) and X-Request-Id
(taken from the client when safe, else made; echoed; on the request's log lines)."""

from __future__ import annotations

import hashlib
import io
import json
import re

import pytest

from platforma_c2d import contract
from platforma_c2d.config import loads_config
from platforma_c2d.http import create_app
from platforma_c2d.logs import setup_logging
from platforma_c2d.runtime import Runtime

TOKEN = "cors-token"
CRM = "https://crm.example.com"
PREFLIGHT = {"Origin": CRM, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"}


def make_client(tmp_path, cors: str = ""):
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    cfg = loads_config(f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n[ari]\nurl = "http://127.0.0.1:9"\n'
                       f'[auth]\ntokens_sha256 = ["{digest}"]\n[http]\ncors_origins = [{cors}]\n', env={})
    rt = Runtime(cfg)
    return rt, create_app(rt.service, rt.config, rt.metrics).test_client()


@pytest.fixture
def with_cors(tmp_path):
    rt, client = make_client(tmp_path, f'"{CRM}"')
    yield client
    rt.stop()


def test_a_preflight_from_an_allowed_origin_is_answered_before_authentication(with_cors):
    r = with_cors.options("/click2dial/calls", headers=PREFLIGHT)
    assert r.status_code == 200, r.get_data()
    assert r.headers["Access-Control-Allow-Origin"] == CRM
    assert {"POST", "GET", "DELETE"} <= {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed


def test_answers_to_an_allowed_origin_expose_our_headers_even_a_401(with_cors):
    r = with_cors.get("/click2dial/calls", headers={"Origin": CRM})
    assert r.status_code == 401 and r.headers["Access-Control-Allow-Origin"] == CRM
    exposed = {h.strip() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "Retry-After", contract.REQUEST_ID_HEADER, contract.API_VERSION_HEADER} <= exposed
    ok = with_cors.get("/click2dial/calls", headers={"Origin": CRM, "Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == CRM


def test_another_origin_gets_no_cors_answer(with_cors):
    r = with_cors.options("/click2dial/calls", headers={**PREFLIGHT, "Origin": "https://evil.example.net"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_cors_is_off_by_default(tmp_path):
    rt, client = make_client(tmp_path)
    try:
        r = client.options("/click2dial/calls", headers=PREFLIGHT)
        assert "Access-Control-Allow-Origin" not in r.headers
        assert "Access-Control-Allow-Origin" not in client.get("/click2dial/calls", headers={"Origin": CRM}).headers
    finally:
        rt.stop()


@pytest.mark.parametrize("origin", ["*", "https://crm.example.com/", "crm.example.com", "https://a b"])
def test_a_bad_origin_is_a_start_up_error(origin):
    from platforma_c2d.config import ConfigError

    with pytest.raises(ConfigError, match="http.cors_origins"):
        loads_config(f'[http]\ncors_origins = ["{origin}"]\n', env={})


@pytest.mark.parametrize("given, kept", [("crm-42.req:7", True), ("a" * 128, True), ("a" * 129, False),
                                         ("two words", False), ("x;y", False), ("", False), ("réq", False)])
def test_the_request_id_is_the_clients_when_safe_else_made(with_cors, given, kept):
    r = with_cors.get("/healthz", headers={contract.REQUEST_ID_HEADER: given} if given else {})
    echoed = r.headers[contract.REQUEST_ID_HEADER]
    assert echoed == given if kept else re.fullmatch("[0-9a-f]{32}", echoed)


def test_every_log_line_of_a_request_carries_its_id(with_cors):
    out = io.StringIO()
    setup_logging("DEBUG", "json", stream=out)
    try:
        with_cors.post("/click2dial/calls", json={"agent": "1001", "callee": "12"},
                       headers={"Authorization": f"Bearer {TOKEN}", contract.REQUEST_ID_HEADER: "crm-req-1"})
        with_cors.get("/click2dial/calls/" + "0" * 32,
                      headers={"Authorization": f"Bearer {TOKEN}", contract.REQUEST_ID_HEADER: "crm-req-2"})
    finally:
        setup_logging("INFO", "json")     # drains the queue into ``out``
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    refused = [line for line in lines if line.get("event") == "api_refused"]
    assert [line["request_id"] for line in refused] == ["crm-req-1", "crm-req-2"]
