"""The OpenAPI document's examples are the service's real bodies: each error
example is provoked from the real application (its service, journal and
error mapping; ARI not connected) and must equal the answer; every example
and every real answer validates against its schema."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from platforma_c2d import contract
from platforma_c2d.calls.model import Call, Origin, Reason, State
from platforma_c2d.config import loads_config
from platforma_c2d.http import create_app, examples
from platforma_c2d.http.limits import RateLimiter
from platforma_c2d.http.openapi import openapi_document
from platforma_c2d.runtime import Runtime

TOKEN, LIMITED = "examples-token", "examples-token-for-1001"
VALID = {"agent": "1001", "callee": "0215550100", "outbound_id": "random"}


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("examples")
    cfg = loads_config(
        f'[store]\nurl = "sqlite:///{tmp}/c.sqlite3"\n[ari]\nurl = "http://127.0.0.1:9"\n'
        f'reconnect_max_backoff_s = 0.5\n'
        f'[clid]\nallowed = ["0115550000", "0115550001", "0115550002"]\n[policy]\ncallee_deny_prefixes = ["0900"]\n'
        f'[auth]\ntokens_sha256 = ["{_sha(TOKEN)}"]\n'
        f'[[auth.token]]\nsha256 = "{_sha(LIMITED)}"\nagents = ["1001"]\nname = "crm"\n', env={})
    rt = Runtime(cfg)
    rt.start()          # the loop runs; ARI (port 9) never connects
    yield rt
    rt.stop()


@pytest.fixture(scope="module")
def client(runtime):
    return create_app(runtime.service, runtime.config, runtime.metrics).test_client()


@pytest.fixture(scope="module")
def doc():
    return openapi_document()


def _validator(doc, name: str) -> Draft202012Validator:
    registry = Registry().with_resource("urn:c2d", Resource.from_contents(doc, DRAFT202012))
    return Draft202012Validator({"$ref": f"urn:c2d#/components/schemas/{name}"}, registry=registry)


def _auth(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _journal_call(runtime, call_id: str, origin: Origin = Origin.REST, **stored) -> Call:
    call = Call(id=call_id, origin=origin, agent="1001", callee="0215550100", outbound_id="random",
                clid="0115550001", call_ref="CRM-4711", token_name="token-1")
    runtime.journal.record(call, "example", **stored)
    call.advance(State.DIALING_CALLEE)
    runtime.journal.record(call, "agent answered")
    return call


def _provoke(name, client, runtime):
    """The real answer for the example ``name``."""
    if name == "invalid-request":
        return client.post("/click2dial/calls", json={**VALID, "callee": "12345"}, headers=_auth())
    if name == "invalid-query":
        return client.get("/click2dial/calls?colour=red&limit=0", headers=_auth())
    if name == "invalid-json":
        return client.post("/click2dial/calls", data=b'{"agent": ', content_type="application/json",
                           headers=_auth())
    if name == "unauthorized":
        return client.get("/click2dial/calls")
    if name == "forbidden":
        return client.post("/click2dial/calls", json={**VALID, "agent": "1002"}, headers=_auth(LIMITED))
    if name == "clid-not-allowed":
        return client.post("/click2dial/calls", json={**VALID, "outbound_id": "0215550199"}, headers=_auth())
    if name == "destination-not-allowed":
        return client.post("/click2dial/calls", json={**VALID, "callee": "0900555010"}, headers=_auth())
    if name == "no-such-call":
        return client.get("/click2dial/calls/0123456789abcdef0123456789abcdef", headers=_auth())
    if name == "not-found":
        return client.get("/click2dial/nope", headers=_auth())
    if name == "method-not-allowed":
        return client.patch("/click2dial/calls", headers=_auth())
    if name == "not-cancellable":
        _journal_call(runtime, examples.CALL_ID, origin=Origin.AGI)
        return client.delete(f"/click2dial/calls/{examples.CALL_ID}", headers=_auth())
    if name == "request-too-large":   # the application's own guard; the HTTP server's: below
        return client.post("/click2dial/calls", data=b"{" + b" " * contract.MAX_BODY_BYTES + b"}",
                           content_type="application/json", headers=_auth())
    if name == "unsupported-media-type":
        return client.post("/click2dial/calls", data=b"agent=1001", content_type="text/plain", headers=_auth())
    if name == "idempotency-key-reused":
        _journal_call(runtime, "1" * 32, idempotency_key="crm-order-42", request_hash="another body")
        return client.post("/click2dial/calls", json=VALID,
                           headers={**_auth(), "Idempotency-Key": "crm-order-42"})
    if name == "rate-limited":
        app = create_app(runtime.service, runtime.config, runtime.metrics, RateLimiter(0, 1))
        app.test_client().get("/click2dial/calls", headers=_auth())
        return app.test_client().get("/click2dial/calls", headers=_auth())
    if name == "asterisk-unavailable":
        return client.post("/click2dial/calls", json=VALID, headers=_auth())
    return None


#: Needs a connected PBX: checked by the sandbox tests (tests/integration/test_sandbox.py).
NEEDS_A_PBX = {"agent-busy", "too-many-calls"}   # too-many-calls: tests/integration/test_call_caps.py


@pytest.mark.parametrize("name", sorted(examples.ERRORS))
def test_each_error_example_is_what_the_service_answers(name, client, runtime, doc):
    if name in NEEDS_A_PBX:
        pytest.skip("provoked against the sandbox PBX")
    resp = _provoke(name, client, runtime)
    assert resp is not None, f"no recipe provokes the example {name}"
    expected = examples.ERRORS[name]
    assert resp.get_json() == expected
    assert resp.status_code == contract.ERRORS[expected["error"]].status
    _validator(doc, "Error").validate(resp.get_json())
    assert resp.headers[contract.API_VERSION_HEADER] == contract.API_VERSION


def test_every_error_example_is_in_the_document_under_its_status(doc):
    used: dict[str, set[str]] = {}
    for item in doc["paths"].values():
        for op in item.values():
            for status, resp in (op.get("responses", {}) if isinstance(op, dict) else {}).items():
                for name, ex in resp.get("content", {}).get("application/json", {}).get("examples", {}).items():
                    used.setdefault(name, set()).add(status)
                    assert ex["value"] == examples.ERRORS[name]
                    if status != "default":
                        assert int(status) == contract.ERRORS[ex["value"]["error"]].status
    assert set(used) == set(examples.ERRORS)


def test_a_503_says_when_to_retry(client):
    resp = client.post("/click2dial/calls", json=VALID, headers=_auth())
    assert resp.status_code == 503 and resp.headers["Retry-After"] == str(contract.RETRY_AFTER_503_S)


def test_405_and_404_are_json_in_our_words_with_allow(client):
    resp = client.patch("/click2dial/calls", headers=_auth())
    assert resp.status_code == 405 and resp.headers["Content-Type"] == "application/json"
    assert {m.strip() for m in resp.headers["Allow"].split(",")} >= {"GET", "POST"}
    assert "URL" not in resp.get_json()["message"]   # not the framework's stock text


@pytest.mark.parametrize("name, example", [("Call", examples.CALL), ("Call", examples.CALL_RINGING),
                                           ("CallList", examples.CALL_LIST), ("CallHistory", examples.CALL_HISTORY),
                                           ("CallRequest", examples.CALL_REQUEST), ("Health", examples.HEALTH)])
def test_examples_validate_against_their_schemas(doc, name, example):
    _validator(doc, name).validate(example)


def test_a_real_call_list_and_history_have_the_examples_shape(client, runtime, doc):
    call = _journal_call(runtime, "2" * 32)
    call.advance(State.CONNECTED)
    runtime.journal.record(call, "answered")
    time.sleep(0.01)
    call.end(Reason.COMPLETED)
    runtime.journal.record(call, "hung up")
    real = client.get(f"/click2dial/calls/{call.id}", headers=_auth()).get_json()
    assert list(real) == list(examples.CALL)
    assert {k: type(v) for k, v in real.items()} == {k: type(v) for k, v in examples.CALL.items()}
    _validator(doc, "Call").validate(real)
    page = client.get("/click2dial/calls?call_ref=CRM-4711&state=ended", headers=_auth()).get_json()
    assert list(page) == list(examples.CALL_LIST)
    _validator(doc, "CallList").validate(page)
    history = client.get(f"/click2dial/calls/{call.id}/history", headers=_auth()).get_json()
    assert [s["state"] for s in history["states"]] == [s["state"] for s in examples.CALL_HISTORY["states"]]
    _validator(doc, "CallHistory").validate(history)
    assert json.loads(json.dumps(real)) == real


def test_the_http_servers_own_413_is_the_documented_json_error():
    """waitress answers a body over the limit before the application sees it
    (tests/integration/test_security.py): with the same body as the example."""
    from platforma_c2d.http.server import too_large_body

    assert json.loads(too_large_body()) == examples.ERRORS["request-too-large"]
