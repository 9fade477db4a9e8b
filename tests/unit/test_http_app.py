"""The Flask app factory, auth, error mapping and rate limiter (no Asterisk needed)."""

from __future__ import annotations

import hashlib

import pytest

from platforma_c2d.calls.errors import RateLimited
from platforma_c2d.config import loads_config
from platforma_c2d.http import create_app
from platforma_c2d.http.limits import RateLimiter
from platforma_c2d.runtime import Runtime

TOKEN = "unit-test-token"


@pytest.fixture
def runtime(tmp_path):
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    cfg = loads_config(f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n[ari]\nurl = "http://127.0.0.1:9"\n'
                       f'[auth]\ntokens_sha256 = ["{digest}"]\n', env={})
    rt = Runtime(cfg)
    yield rt
    rt.stop()


def test_factory_registers_the_spec_routes(runtime):
    app = create_app(runtime.service, runtime.config, runtime.metrics)
    rules = {(r.rule, m) for r in app.url_map.iter_rules() for m in r.methods - {"HEAD", "OPTIONS"}}
    assert {("/click2dial/calls", "POST"), ("/click2dial/calls", "GET"),
            ("/click2dial/calls/<call_id>", "GET"), ("/click2dial/calls/<call_id>", "DELETE"),
            ("/click2dial/openapi.json", "GET"), ("/healthz", "GET"), ("/metrics", "GET")} <= rules


def test_unknown_route_is_json_404(runtime):
    r = create_app(runtime.service, runtime.config, runtime.metrics).test_client().get("/nope")
    assert r.status_code == 404 and r.get_json()["error"] == "not-found"


def test_missing_call_is_no_such_call(runtime):
    client = create_app(runtime.service, runtime.config, runtime.metrics).test_client()
    r = client.get("/click2dial/calls/" + "f" * 32, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 404 and r.get_json()["error"] == "no-such-call"


def test_health_is_503_while_ari_is_down(runtime):
    r = create_app(runtime.service, runtime.config, runtime.metrics).test_client().get("/healthz")
    assert r.status_code == 503 and r.get_json()["ari_connected"] is False


def test_oversized_body_is_413(runtime):
    client = create_app(runtime.service, runtime.config, runtime.metrics).test_client()
    r = client.post("/click2dial/calls", data=b"{" + b" " * 70000 + b"}", content_type="application/json",
                    headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 413 and r.get_json()["error"] == "request-too-large"


def test_duplicate_json_keys_are_refused(runtime):
    client = create_app(runtime.service, runtime.config, runtime.metrics).test_client()
    r = client.post("/click2dial/calls", data=b'{"agent":"1001","agent":"1002"}',
                    content_type="application/json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400 and "agent" in r.get_json()["details"]["fields"]


def test_reads_and_writes_are_limited_apart():
    limiter = RateLimiter(1, 2, clock=lambda: 0.0)
    limiter.hit("a", write=True)
    limiter.hit("a", write=False)
    limiter.hit("a", write=False)
    with pytest.raises(RateLimited) as read:
        limiter.hit("a", write=False)
    with pytest.raises(RateLimited) as write:
        limiter.hit("a", write=True)
    assert read.value.details["kind"] == "read" and write.value.details["kind"] == "write"


def test_rate_limiter_window_slides():
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    limiter.hit("a")
    limiter.hit("a")
    with pytest.raises(RateLimited) as exc:
        limiter.hit("a")
    assert exc.value.headers["Retry-After"] == "60"
    limiter.hit("b")
    now[0] = 60.0
    limiter.hit("a")


def test_deeply_nested_json_is_400_not_500(runtime):
    client = create_app(runtime.service, runtime.config, runtime.metrics).test_client()
    body = b'{"agent":' + b"[" * 5000 + b"]" * 5000 + b"}"
    r = client.post("/click2dial/calls", data=body, content_type="application/json",
                    headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400 and r.get_json()["error"] == "invalid-request"


def test_method_not_allowed_says_which_methods_are(runtime):
    client = create_app(runtime.service, runtime.config, runtime.metrics).test_client()
    r = client.patch("/click2dial/calls", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 405 and r.get_json()["error"] == "method-not-allowed"
    assert {"GET", "POST"} <= {m.strip() for m in r.headers["Allow"].split(",")}


def test_a_token_with_a_trailing_non_breaking_space_is_refused(runtime):
    client = create_app(runtime.service, runtime.config, runtime.metrics).test_client()
    r = client.get("/click2dial/calls", headers={"Authorization": f"Bearer {TOKEN}\u00a0"})
    assert r.status_code == 401


@pytest.mark.parametrize("header", [f"Bearer\t{TOKEN}", f"Bearer  {TOKEN}", f"bearer {TOKEN}\t",
                                    f" Bearer \t{TOKEN} "])
def test_blanks_around_the_token_are_ignored(runtime, header):
    client = create_app(runtime.service, runtime.config, runtime.metrics).test_client()
    assert client.get("/click2dial/calls", headers={"Authorization": header}).status_code == 200


def test_metrics_content_type_is_prometheus_text_with_one_charset(runtime):
    r = create_app(runtime.service, runtime.config, runtime.metrics).test_client().get("/metrics")
    assert r.status_code == 200
    params = [p.strip() for p in r.headers["Content-Type"].split(";")]
    assert params[0] == "text/plain" and sum(p.startswith("charset=") for p in params) == 1


def test_a_number_of_5000_digits_is_json_but_refused_with_400(runtime):
    client = create_app(runtime.service, runtime.config, runtime.metrics).test_client()
    r = client.post("/click2dial/calls", data=b'{"agent": ' + b"1" * 5000 + b"}",
                    content_type="application/json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400 and r.get_json()["error"] == "invalid-request"


def test_history_follows_the_tokens_agents_rule(tmp_path):
    """A token limited to agent 1001 reads the history of 1001's calls only (404 otherwise)."""
    from platforma_c2d.calls.model import Call, Origin, Reason, State, new_call_id

    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    cfg = loads_config(f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n[ari]\nurl = "http://127.0.0.1:9"\n'
                       f'[[auth.token]]\nsha256 = "{digest}"\nagents = ["1001"]\nname = "crm"\n', env={})
    rt = Runtime(cfg)
    try:
        calls = {}
        for agent in ("1001", "1002"):
            call = Call(id=new_call_id(), origin=Origin.REST, agent=agent, callee="0215550100",
                        outbound_id="random", clid="0115550001", call_ref="h-1")
            rt.journal.record(call, "placed")
            call.advance(State.DIALING_CALLEE)
            rt.journal.record(call, "agent answered")
            rt.journal.record(call, "ringback")          # the same state again: folded
            call.end(Reason.CALLEE_BUSY)
            rt.journal.record(call, "busy")
            calls[agent] = call.id
        client = create_app(rt.service, rt.config, rt.metrics).test_client()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = client.get(f"/click2dial/calls/{calls['1001']}/history", headers=auth)
        assert r.status_code == 200
        assert [(s["state"], s["reason"]) for s in r.get_json()["states"]] == [
            ("dialing_agent", None), ("dialing_callee", None), ("ended", "callee_busy")]
        r = client.get(f"/click2dial/calls/{calls['1002']}/history", headers=auth)
        assert r.status_code == 404 and r.get_json()["error"] == "no-such-call"
        assert client.get(f"/click2dial/calls/{calls['1001']}/history").status_code == 401
    finally:
        rt.stop()
