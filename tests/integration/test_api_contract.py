"""The API as integrators see it, against the real service and Asterisk: the
request id on the log lines of a real call, and a browser's CORS preflight."""

from __future__ import annotations

import hashlib
import json

from testbed.sipp import uas_scenario

AGENT_PORT, TRUNK_PORT = 5071, 5070
TOKEN = "contract-token"
CRM = "https://crm.example.com"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = {"auth": {"tokens_sha256": [hashlib.sha256(TOKEN.encode()).hexdigest()]},
          "http": {"cors_origins": [CRM]}}
BODY = {"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199", "call_ref": "rid-1"}


def log_lines(svc) -> list[dict]:
    return [json.loads(line) for line in svc.log_path.read_text().splitlines() if line.startswith("{")]


def test_the_request_id_is_echoed_and_on_the_log_lines_of_the_call_it_placed(asterisk, make_service, sipp):
    svc = make_service(CONFIG)
    sipp("agent", AGENT_PORT, uas_scenario(answer=False))
    r = svc.post_call(BODY, headers={**AUTH, "X-Request-Id": "crm-place-42"})
    assert r.status_code == 201 and r.headers["X-Request-Id"] == "crm-place-42"
    assert r.headers["X-Platforma-Api-Version"]
    call_id = r.json()["id"]
    d = svc.http.delete(f"/click2dial/calls/{call_id}", headers={**AUTH, "X-Request-Id": "bad id\twith blanks"})
    made = d.headers["X-Request-Id"]
    assert d.status_code == 200 and made != "bad id\twith blanks" and len(made) == 32
    lines = log_lines(svc)
    placed = [line for line in lines if line.get("request_id") == "crm-place-42"]
    cancelled = [line for line in lines if line.get("request_id") == made]
    assert placed and all(line.get("call_id") in (None, call_id) for line in placed)
    assert any(line.get("call_id") == call_id for line in placed), placed      # the call's own line
    assert any("cancel" in line["msg"] for line in cancelled), cancelled


def test_a_browser_preflight_is_answered_before_authentication(asterisk, make_service):
    svc = make_service(CONFIG)
    r = svc.http.options("/click2dial/calls", headers={
        "Origin": CRM, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == CRM
    other = svc.http.options("/click2dial/calls", headers={
        "Origin": "https://elsewhere.example.net", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in other.headers
    listed = svc.http.get("/click2dial/calls", headers={**AUTH, "Origin": CRM})
    assert listed.status_code == 200 and listed.headers["Access-Control-Allow-Origin"] == CRM
