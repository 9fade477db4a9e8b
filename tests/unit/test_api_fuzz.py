"""Property-based fuzz of the HTTP API (in process, real service code, no
Asterisk): whatever the body, headers or path, the API never answers 5xx
other than 503 asterisk-unavailable, and never journals or dials a call for
an invalid request."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platforma_c2d import rules
from platforma_c2d.config import loads_config
from platforma_c2d.http import create_app
from platforma_c2d.http.limits import RateLimiter
from platforma_c2d.runtime import Runtime

FIELDS = ["agent", "callee", "outbound_id", "call_ref", "contact_ref"]
GOOD = {"agent": "1001", "callee": "0215550100", "outbound_id": "random", "call_ref": "r"}
ALMOST = ["1001", "100", "10011", "0215550100", "021555010", "27215550100", "0012345678901",
          "random", "Random", "+27215550100", "0215550100\n", " 1001", "٠٢١٥٥٥٠١٠٠", "", "a b",
          "ord-42", "x" * 300, "ref\r\nX-Injected: 1", "0215550199"]
values = st.one_of(st.sampled_from(ALMOST), st.text(max_size=40), st.integers(), st.none(),
                   st.booleans(), st.floats(allow_nan=False), st.lists(st.text(max_size=3), max_size=2))
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS + ["extra", "__proto__"]), values, max_size=6),
    st.fixed_dictionaries({k: st.one_of(st.just(v), values) for k, v in GOOD.items()}),
    st.lists(st.integers(), max_size=3), st.text(max_size=20), st.integers())


@pytest.fixture(scope="module")
def app_and_runtime(tmp_path_factory):
    db = tmp_path_factory.mktemp("fuzz") / "calls.sqlite3"
    cfg = loads_config(f'[store]\nurl = "sqlite:///{db}"\n[ari]\nurl = "http://127.0.0.1:9"\n',
                       env={})
    runtime = Runtime(cfg)  # not started: ARI stays disconnected, nothing can be dialled
    app = create_app(runtime.service, cfg, runtime.metrics, RateLimiter(0))
    yield app, runtime
    runtime.journal.close()


def _valid(body) -> bool:
    try:
        rules.validate_call_request(body)
        return True
    except rules.ValidationError:
        return False


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_post_never_5xx_and_never_journals_an_invalid_call(app_and_runtime, body):
    app, runtime = app_and_runtime
    client = app.test_client()
    r = client.post("/click2dial/calls", data=json.dumps(body), content_type="application/json")
    data = r.get_json()
    assert set(data) == {"error", "message", "details"}, data
    try:
        json.dumps(body, allow_nan=False)
    except ValueError:   # NaN or Infinity: Python writes them, but that is not JSON
        assert r.status_code == 400 and data["error"] == "invalid-json", data
    else:
        if _valid(body):
            assert r.status_code in (403, 503), data
        else:
            assert r.status_code == 400 and data["error"] == "invalid-request", data
    assert runtime.journal.list()[1] == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200), ctype=st.sampled_from(
    ["application/json", "text/plain", "application/x-www-form-urlencoded", "", "application/problem+json"]))
def test_raw_bodies_get_400_or_415_never_5xx(app_and_runtime, raw, ctype):
    app, runtime = app_and_runtime
    r = app.test_client().post("/click2dial/calls", data=raw, content_type=ctype or None)
    assert r.status_code in (400, 415, 503, 403), r.get_data()
    assert r.get_json()["error"]
    assert runtime.journal.list()[1] == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=60),
       method=st.sampled_from(["GET", "DELETE"]),
       query=st.dictionaries(st.sampled_from(["state", "limit", "offset", "x"]), st.text(max_size=12), max_size=3))
def test_get_and_delete_never_5xx(app_and_runtime, path, method, query):
    app, _ = app_and_runtime
    r = app.test_client().open("/click2dial/calls/" + path.replace("?", "").replace("#", ""),
                               method=method, query_string=query)
    assert r.status_code < 500 or r.status_code == 503, r.get_data()
    r = app.test_client().get("/click2dial/calls", query_string=query)
    assert r.status_code in (200, 400), r.get_data()
