"""Toll-fraud defences and API security against the real service and Asterisk."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from testbed.asterisk import ARI_PASSWORD
from testbed.sipp import uac_scenario, uas_scenario
from tests.integration.test_resilience import metric

AGENT_PORT, TRUNK_PORT, PHONE_PORT = 5071, 5070, 5081
TOKEN, OTHER = "s3cret-token-for-crm", "token-limited-to-1002"
BODY = {"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199", "call_ref": "sec-1"}


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def auth(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


AUTH_CONFIG = {"auth": {"tokens_sha256": [sha(TOKEN)],
                        "token": [{"sha256": sha(OTHER), "agents": ["1002"], "name": "crm-b"}]}}


def test_every_route_needs_a_bearer_token(asterisk, make_service, sipp):
    svc = make_service(AUTH_CONFIG)
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    for method, path in (("POST", "/click2dial/calls"), ("GET", "/click2dial/calls"),
                         ("GET", "/click2dial/calls/" + "0" * 32), ("DELETE", "/click2dial/calls/" + "0" * 32)):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            r = svc.http.request(method, path, json=BODY, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.json()["error"] == "unauthorized"
    time.sleep(0.3)
    assert agent.received() == []
    assert svc.http.get("/click2dial/calls", headers=auth()).json()["total"] == 0
    # The description and the health endpoints stay open.
    assert svc.http.get("/click2dial/openapi.json").status_code == 200
    assert svc.http.get("/healthz").status_code == 200


def test_a_token_limited_to_agents_cannot_dial_for_others(asterisk, make_service, sipp):
    svc = make_service(AUTH_CONFIG)
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    r = svc.post_call(BODY, headers=auth(OTHER))
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    time.sleep(0.3)
    assert agent.received() == []


def test_clid_outside_allowed_is_refused_on_rest_and_on_the_header_path(asterisk, make_service, sipp):
    svc = make_service({"clid": {"allowed": ["0115550000", "0115550001", "0115550002"]}})
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    r = svc.post_call(BODY)
    assert r.status_code == 403 and r.json()["error"] == "clid-not-allowed"
    phone = sipp("phone", PHONE_PORT, uac_scenario(
        target="0215550100", from_user="2001", headers=["X-Platforma-Outbound-ID: 0215550199"]),
        uac_target="127.0.0.1:5060", calls=1)
    finals = phone.wait_for(lambda m: m.direction == "received" and (m.status or 0) >= 200, timeout=15)
    assert finals and finals[0].status == 403
    time.sleep(0.3)
    assert agent.received() == [] and trunk.received() == []
    calls = svc.http.get("/click2dial/calls").json()["calls"]
    assert [(c["origin"], c["reason"]) for c in calls] == [("webrtc", "rejected")]


def test_destination_policy_refuses_premium_and_international(asterisk, make_service, sipp):
    svc = make_service({"policy": {"callee_deny_prefixes": ["0900", "00"],
                                   "agent_number_deny_prefixes": ["00"]}})
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    for body in ({**BODY, "callee": "0900123456"}, {**BODY, "callee": "0044207946000"},
                 {**BODY, "agent": "0044207946001"}):
        r = svc.post_call(body)
        assert r.status_code == 403 and r.json()["error"] == "destination-not-allowed", r.text
    time.sleep(0.3)
    assert agent.received() == []


def test_an_external_agent_number_is_held_to_the_callee_policy_when_agent_lists_are_unset(
        asterisk, make_service, sipp):
    """An external agent's leg leaves through the trunk like a callee's: an
    administrator who denied premium and international callees (the sample's
    advice) and set no agent_number_* list must not have a premium number
    dialled as the agent."""
    svc = make_service({"policy": {"callee_deny_prefixes": ["0900", "00"]}})
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    for agent in ("0900123456", "0044207946001"):
        r = svc.post_call({**BODY, "agent": agent})
        assert r.status_code == 403 and r.json()["error"] == "destination-not-allowed", r.text
        assert set(r.json()["details"]["fields"]) == {"agent"}, r.text
    time.sleep(0.5)
    assert trunk.received("INVITE") == []


def test_second_active_call_for_an_agent_is_409(asterisk, service, sipp):
    sipp("agent", AGENT_PORT, uas_scenario(answer=False))
    first = service.post_call(BODY)
    assert first.status_code == 201
    second = service.post_call({**BODY, "call_ref": "sec-2"})
    assert second.status_code == 409 and second.json()["error"] == "agent-busy"
    service.http.delete(f"/click2dial/calls/{first.json()['id']}")


def test_rate_limit_per_token_is_429_with_retry_after(asterisk, make_service):
    svc = make_service({**AUTH_CONFIG, "limits": {"reads_per_minute": 3, "writes_per_minute": 100}})
    codes = [svc.http.get("/click2dial/calls", headers=auth()).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = svc.http.get("/click2dial/calls", headers=auth())
    assert r.json()["error"] == "rate-limited" and 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.json()["details"] == {"kind": "read", "limit_per_minute": 3}
    # Another token has its own budget; writes are counted apart from reads.
    assert svc.http.get("/click2dial/calls", headers=auth(OTHER)).status_code == 200
    assert svc.http.delete("/click2dial/calls/" + "0" * 32, headers=auth()).status_code == 404


def test_with_the_default_limits_a_crm_polling_its_calls_is_never_refused(asterisk, make_service):
    """SPEC §2: writes (POST, DELETE) and reads (GET) are limited apart, and the default
    read budget lets a CRM follow five calls by polling each once a second for a minute."""
    from platforma_c2d.config.schema import LimitsConfig

    svc = make_service({**AUTH_CONFIG, "limits": {"writes_per_minute": 3,
                                                  "reads_per_minute": LimitsConfig().reads_per_minute}})
    gone = "/click2dial/calls/" + "0" * 32
    assert [svc.http.delete(gone, headers=auth()).status_code for _ in range(4)] == [404, 404, 404, 429]
    refused = svc.http.post("/click2dial/calls", json=BODY, headers=auth())
    assert refused.status_code == 429 and refused.json()["details"]["kind"] == "write"
    # Writes used up: 5 calls x 60 polls (a minute of once-a-second polling) still all answer.
    polls = [svc.http.get(gone, headers=auth()).status_code for _ in range(5 * 60)]
    assert set(polls) == {404}


def test_idempotency_key_returns_the_first_call_and_dials_once(asterisk, service, sipp):
    agent = sipp("agent", AGENT_PORT, uas_scenario(answer=False))
    key = {"Idempotency-Key": "crm-order-42-attempt-1"}
    first = service.post_call(BODY, headers=key)
    again = service.post_call(BODY, headers=key)
    assert first.status_code == 201 and again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    other = service.post_call({**BODY, "call_ref": "changed"}, headers=key)
    assert other.status_code == 422 and other.json()["error"] == "idempotency-key-reused"
    time.sleep(0.5)
    assert len(agent.received("INVITE")) == 1
    assert service.http.get("/click2dial/calls").json()["total"] == 1
    service.http.delete(f"/click2dial/calls/{first.json()['id']}")


def test_concurrent_requests_with_one_idempotency_key_dial_once(asterisk, service, sipp):
    """A CRM that retries before the first answer came: still one call."""
    agent = sipp("agent", AGENT_PORT, uas_scenario(answer=False))
    key = {"Idempotency-Key": "crm-order-43-double-click"}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: service.post_call(BODY, headers=key), range(8)))
    assert [r.status_code for r in answers] == [201] * 8
    assert len({r.json()["id"] for r in answers}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 7
    time.sleep(0.5)
    assert len(agent.received("INVITE")) == 1
    assert service.http.get("/click2dial/calls").json()["total"] == 1
    service.http.delete(f"/click2dial/calls/{answers[0].json()['id']}")


def test_no_secret_in_logs_or_answers(asterisk, make_service, sipp):
    svc = make_service(AUTH_CONFIG)
    svc.http.headers.update(auth())
    sipp("agent", AGENT_PORT, uas_scenario(reject_code=486))
    r = svc.post_call(BODY)
    call_id = r.json()["id"]
    svc.wait_state(call_id, "ended")
    svc.post_call(BODY, headers=auth("guess"))
    answers = r.text + svc.http.get("/click2dial/calls", headers=auth()).text
    svc.stop()
    log = svc.log_path.read_text()
    for secret in (TOKEN, sha(TOKEN), ARI_PASSWORD, OTHER):
        assert secret not in log and secret not in answers
    # Every log line about the call carries its id and call_ref.
    lines = [line for line in log.splitlines() if call_id in line]
    assert lines and all('"call_ref": "sec-1"' in line for line in lines)


def test_a_forged_log_line_in_input_stays_one_line(asterisk, service, sipp):
    forged = "x\n{\"level\": \"INFO\", \"msg\": \"forged\"}"
    phone = sipp("phone", PHONE_PORT, uac_scenario(
        target="0215550100", from_user="2001",
        headers=["X-Platforma-Call-Ref: ok\\n" + forged.replace("\n", "%0A")]),
        uac_target="127.0.0.1:5060", calls=1)
    phone.wait_for(lambda m: m.direction == "received" and (m.status or 0) >= 200, timeout=15)
    service.post_call({**BODY, "call_ref": forged})
    service.stop()
    for line in service.log_path.read_text().splitlines():
        assert not line.startswith('{"level": "INFO", "msg": "forged"')


def test_empty_token_list_refuses_a_public_address(workdir):
    cfg = workdir / "c2d.toml"
    cfg.write_text('[http]\nlisten = "0.0.0.0:18081"\n')
    res = subprocess.run([sys.executable, "-m", "platforma_c2d.cli", "serve", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert "auth.tokens_sha256" in res.stderr and "Traceback" not in res.stderr


def test_a_token_limited_to_agents_sees_and_cancels_only_their_calls(asterisk, make_service, sipp):
    svc = make_service({**AUTH_CONFIG, "limits": {"writes_per_minute": 0, "reads_per_minute": 0}})
    sipp("agent", AGENT_PORT, uas_scenario(answer=False))
    other = svc.post_call(BODY, headers=auth()).json()          # agent 1001, full token
    assert svc.http.get(f"/click2dial/calls/{other['id']}", headers=auth(OTHER)).status_code == 404
    listed = svc.http.get("/click2dial/calls", headers=auth(OTHER)).json()
    assert listed["total"] == 0 and listed["calls"] == []
    r = svc.http.delete(f"/click2dial/calls/{other['id']}", headers=auth(OTHER))
    assert r.status_code == 404 and r.json()["error"] == "no-such-call"
    assert svc.get_call_with(other["id"], auth())["state"] == "dialing_agent"
    assert svc.http.get("/click2dial/calls", headers=auth()).json()["total"] == 1
    svc.http.delete(f"/click2dial/calls/{other['id']}", headers=auth())


def test_refused_requests_are_in_the_log_with_the_token_name(asterisk, make_service):
    svc = make_service({"clid": {"allowed": ["0115550000", "0115550001", "0115550002"]}, **AUTH_CONFIG})
    r = svc.post_call(BODY, headers=auth(OTHER))
    assert r.status_code == 403
    svc.http.get("/click2dial/calls", headers=auth("nope"))
    svc.stop()
    log = svc.log_path.read_text()
    assert '"error": "forbidden"' in log and '"token": "crm-b"' in log
    assert '"error": "unauthorized"' in log
    assert OTHER not in log and TOKEN not in log


TOO_LARGE = {"error": "request-too-large", "message": "the body is larger than 64 KiB", "details": {}}


def test_a_body_over_64_kib_is_refused_before_it_is_read(asterisk, service):
    r = service.http.post("/click2dial/calls", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                          headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.headers["Content-Type"] == "application/json" and r.json() == TOO_LARGE
    assert service.http.get("/click2dial/calls").json()["total"] == 0
    # Counted like the application's own refusals.
    assert metric(service, "c2d_requests_rejected_total", 'error="request-too-large"') == 1


def test_a_declared_body_over_64_kib_gets_the_json_413_before_any_of_it_is_sent(asterisk, service):
    """The answer comes from the headers alone: the server never waits for
    (nor reads) the 100 MB it was promised."""
    import json
    import socket

    host, port = service.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /click2dial/calls HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{")
        answer = b""
        while chunk := sock.recv(65536):   # the server closes after its answer
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert b"\r\ncontent-type: application/json" in head.lower(), head
    assert json.loads(body) == TOO_LARGE
    assert metric(service, "c2d_requests_rejected_total", 'error="request-too-large"') == 1


def test_policy_refused_callee_on_the_header_path_is_403(asterisk, make_service, sipp):
    make_service({"policy": {"callee_deny_prefixes": ["0900"]}})
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = sipp("phone", PHONE_PORT, uac_scenario(target="0900123456", from_user="2001"),
                 uac_target="127.0.0.1:5060", calls=1)
    finals = phone.wait_for(lambda m: m.direction == "received" and (m.status or 0) >= 200, timeout=15)
    assert finals and finals[0].status == 403
    assert trunk.received() == []


def test_a_repeated_x_platforma_header_is_refused(asterisk, service, sipp):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    for headers in (["X-Platforma-Outbound-ID: 0115550001", "X-Platforma-Outbound-ID: 0215550199"],
                    ["X-Platforma-Call-Ref: a", "X-Platforma-Call-Ref: b"]):
        phone = sipp("phone", PHONE_PORT, uac_scenario(target="0215550100", from_user="2001",
                                                       headers=headers),
                     uac_target="127.0.0.1:5060", calls=1)
        finals = phone.wait_for(lambda m: m.direction == "received" and (m.status or 0) >= 200, timeout=15)
        assert finals and finals[0].status == 403, headers
        phone.stop()
    assert trunk.received() == []
