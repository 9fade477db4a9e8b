"""A call's status_callback cannot leave its allowed URL prefix through dot segments (SPEC §10).

The delivery's HTTP client (aiohttp, through yarl) resolves ``.`` and
``..`` path segments, also percent-encoded ones, before it sends: a URL
that starts with the prefix as text may still be POSTed to another path of
the host. The oracle here is yarl itself, the parser of the delivery.
"""

from __future__ import annotations

import hashlib

import pytest
import yarl

from platforma_c2d.config import loads_config
from platforma_c2d.http import create_app
from platforma_c2d.runtime import Runtime
from platforma_c2d.webhooks.callback import check_status_callback

PREFIX = "https://crm.example.com/hooks/tenant-a/"
ESCAPES = (
    PREFIX + "../tenant-b/x",
    PREFIX + "../../admin",
    PREFIX + "%2e%2e/tenant-b/x",
    PREFIX + ".%2E/tenant-b/x",
    PREFIX + "x/../../tenant-b",
    PREFIX + "..",
)


@pytest.mark.parametrize("url", ESCAPES)
def test_a_url_the_client_would_send_outside_the_prefix_is_refused(url):
    assert not str(yarl.URL(url)).startswith(PREFIX)     # what aiohttp would POST to
    with pytest.raises(ValueError, match="path segment"):
        check_status_callback(url, (PREFIX,))


@pytest.mark.parametrize("url", (PREFIX + "42", PREFIX + "a..b/c.d?next=../x", PREFIX + "...",
                                 PREFIX + "%2e%2e%2fx", PREFIX))
def test_urls_that_stay_under_the_prefix_are_accepted(url):
    assert check_status_callback(url, (PREFIX,)) == url
    assert str(yarl.URL(url)).startswith(PREFIX)


def test_the_api_answers_400_on_status_callback_for_a_dot_segment(tmp_path):
    token = "t"
    cfg = loads_config(
        f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n[ari]\nurl = "http://127.0.0.1:9"\n'
        f'[auth]\ntokens_sha256 = ["{hashlib.sha256(token.encode()).hexdigest()}"]\n'
        f'[webhooks]\nallowed_url_prefixes = ["{PREFIX}"]\ncallback_secret = "s"\n', env={})
    rt = Runtime(cfg)
    try:
        client = create_app(rt.service, rt.config, rt.metrics).test_client()
        r = client.post("/click2dial/calls", headers={"Authorization": f"Bearer {token}"},
                        json={"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199",
                              "status_callback": PREFIX + "../../admin"})
        assert r.status_code == 400 and r.get_json()["error"] == "invalid-request"
        assert "path segment" in r.get_json()["details"]["fields"]["status_callback"]
    finally:
        rt.stop()
