"""An event stream refused because every slot is taken says when to try again (SPEC §10, §2):
503 ``too-many-streams`` with ``Retry-After``, like every other 503 of the API, and the
slot is free again once the open stream is closed. Through the real application."""

from __future__ import annotations

import hashlib

from platforma_c2d.config import loads_config
from platforma_c2d.http import create_app
from platforma_c2d.runtime import Runtime

TOKEN = "stream-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Accept": "text/event-stream"}


def test_a_stream_beyond_max_streams_is_503_with_retry_after(tmp_path):
    cfg = loads_config(f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n[ari]\nurl = "http://127.0.0.1:9"\n'
                       f'[auth]\ntokens_sha256 = ["{hashlib.sha256(TOKEN.encode()).hexdigest()}"]\n'
                       "[webhooks]\nmax_streams = 1\n", env={})
    rt = Runtime(cfg)
    try:
        client = create_app(rt.service, rt.config, rt.metrics).test_client()
        first = client.get("/click2dial/events", headers=AUTH, buffered=False)
        assert first.status_code == 200
        refused = client.get("/click2dial/events", headers=AUTH)
        assert refused.status_code == 503 and refused.get_json()["error"] == "too-many-streams"
        assert int(refused.headers["Retry-After"]) >= 1
        first.close()
        again = client.get("/click2dial/events", headers=AUTH, buffered=False)
        assert again.status_code == 200
        again.close()
    finally:
        rt.stop()
