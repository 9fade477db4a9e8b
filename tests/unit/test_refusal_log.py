"""A flood of requests with bad tokens does not flood the log (docs/security.md)."""

from __future__ import annotations

import logging

from platforma_c2d.http import create_app
from platforma_c2d.http.errors import UNAUTHORIZED_LINES_PER_S, LogThrottle
from tests.unit.test_http_app import runtime  # noqa: F401 - the fixture


def test_two_thousand_bad_tokens_write_a_handful_of_lines_and_count_every_one(runtime, caplog):
    client = create_app(runtime.service, runtime.config, runtime.metrics).test_client()
    with caplog.at_level(logging.WARNING, logger="platforma_c2d.http"):
        codes = [client.get("/click2dial/calls",
                            headers={"Authorization": f"Bearer guess-{i}"}).status_code
                 for i in range(2000)]
    # [limits] failed_auth_per_minute (30) 401s from the address, then 429 for the rest of the minute.
    limit = runtime.config.limits.failed_auth_per_minute
    assert codes == [401] * limit + [429] * (2000 - limit)
    lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert 1 <= len(lines) <= UNAUTHORIZED_LINES_PER_S * 20, len(lines)   # a few per second of the run
    metrics = runtime.metrics.render().decode()
    assert f'c2d_requests_rejected_total{{error="unauthorized"}} {float(limit)}' in metrics
    assert f'c2d_requests_rejected_total{{error="rate-limited"}} {float(2000 - limit)}' in metrics


def test_the_throttle_says_how_many_lines_it_left_out():
    now = [100.0]
    throttle = LogThrottle(2, clock=lambda: now[0])
    assert [throttle.allow() for _ in range(5)] == [0, 0, None, None, None]
    now[0] = 101.2
    assert throttle.allow() == 3 and throttle.allow() == 0 and throttle.allow() is None


def test_without_tokens_a_request_naming_another_host_is_refused(tmp_path):
    """DNS rebinding: a page of evil.example resolved to 127.0.0.1 must not place calls."""
    from platforma_c2d.config import loads_config
    from platforma_c2d.runtime import Runtime

    cfg = loads_config(f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n'
                       '[ari]\nurl = "http://127.0.0.1:9"\n', env={})
    rt = Runtime(cfg)
    try:
        client = create_app(rt.service, rt.config, rt.metrics).test_client()
        for headers in ({"Host": "evil.example:8080"},
                        {"Host": "127.0.0.1:8080", "Origin": "http://evil.example:8080"}):
            r = client.post("/click2dial/calls", json={"agent": "1001", "callee": "0215550100"},
                            headers=headers)
            assert r.status_code == 403 and r.get_json()["error"] == "host-not-allowed", r.data
        for headers in ({"Host": "127.0.0.1:8080"}, {"Host": "localhost:8080"},
                        {"Host": "[::1]:8080", "Origin": "http://127.0.0.1:8080"}):
            assert client.get("/click2dial/calls", headers=headers).status_code == 200, headers
        assert rt.journal.list() == ([], 0)
    finally:
        rt.stop()
