"""``GET /click2dial/clids`` (SPEC §12): behind the bearer token, and its answer
is what the OpenAPI document declares."""

from __future__ import annotations

import hashlib

import pytest

from platforma_c2d import rules
from platforma_c2d.config import loads_config
from platforma_c2d.http import create_app
from platforma_c2d.http.openapi import openapi_document
from platforma_c2d.runtime import Runtime
from tests.unit.test_openapi_examples import _validator

TOKEN = "clids-token"


@pytest.fixture
def runtime(tmp_path):
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    cfg = loads_config(
        f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n[ari]\nurl = "http://127.0.0.1:9"\n'
        f'[auth]\ntokens_sha256 = ["{digest}"]\n'
        '[clid]\npool = ["0115550001", "0115550002"]\n'
        '[[clid.pools]]\nname = "sales"\nnumbers = ["0215550101", "0215550102"]\nagents = ["10*"]\n'
        'policy = "sticky"\nfallback = "round_robin"\n', env={})
    rt = Runtime(cfg)
    yield rt
    rt.stop()


def test_clids_needs_the_token(runtime):
    client = create_app(runtime.service, runtime.config, runtime.metrics).test_client()
    r = client.get("/click2dial/clids")
    assert r.status_code == 401 and r.get_json()["error"] == "unauthorized"


def test_clids_lists_every_pool_as_the_openapi_document_says(runtime):
    req = rules.validate_fields(agent="1001", callee="0215550100", outbound_id="random", call_ref=None)
    assert runtime.picker.choose(req).clid == "0215550101"
    client = create_app(runtime.service, runtime.config, runtime.metrics).test_client()
    r = client.get("/click2dial/clids", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    body = r.get_json()
    _validator(openapi_document(), "ClidPools").validate(body)
    default, sales = body["pools"]
    assert (default["name"], default["policy"], default["fallback"]) == ("default", "random", None)
    assert (sales["name"], sales["policy"], sales["fallback"]) == ("sales", "sticky", "round_robin")
    assert sales["numbers"][0] == {"number": "0215550101", "calls_today": 1, "recent_calls": 0,
                                   "answer_rate": None, "rested_until": None}


def test_a_draw_for_a_call_not_placed_is_taken_back(runtime):
    runtime.start()   # the loop runs; ARI (port 9) never connects
    client = create_app(runtime.service, runtime.config, runtime.metrics).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # With an Idempotency-Key the request reaches the telephony thread (a replay
    # could be answered) and is refused there: nothing is dialled.
    r = client.post("/click2dial/calls", json={"agent": "1001", "callee": "0215550100",
                                               "outbound_id": "random"},
                    headers={**auth, "Idempotency-Key": "k-1"})
    assert r.status_code == 503 and r.get_json()["error"] == "asterisk-unavailable"
    sales = client.get("/click2dial/clids", headers=auth).get_json()["pools"][1]
    assert [n["calls_today"] for n in sales["numbers"]] == [0, 0]
