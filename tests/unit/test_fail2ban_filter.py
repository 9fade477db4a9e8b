"""The fail2ban filter (deploy/fail2ban/platforma-c2d.conf) matches the
service's own 401 refusal lines, as the service formats them, and takes the
client's address from them; other refusals are not matched."""

from __future__ import annotations

import configparser
import hashlib
import logging
import re
from pathlib import Path

import pytest

from platforma_c2d.config import loads_config
from platforma_c2d.http import create_app
from platforma_c2d.logs import JsonFormatter, TextFormatter
from platforma_c2d.runtime import Runtime

FILTER = Path(__file__).resolve().parents[2] / "deploy/fail2ban/platforma-c2d.conf"
# fail2ban's own expansion of <HOST> (an IPv4/IPv6 address or a host name).
HOST = r"(?:::f{4,6}:)?(?P<host>[\w\-.^_:]*\w)"


def failregexes() -> list[re.Pattern]:
    parser = configparser.RawConfigParser()
    parser.read(FILTER)
    lines = [ln.strip() for ln in parser.get("Definition", "failregex").splitlines() if ln.strip()]
    return [re.compile(ln.replace("<HOST>", HOST)) for ln in lines]


@pytest.fixture
def app(tmp_path):
    digest = hashlib.sha256(b"the-token").hexdigest()
    cfg = loads_config(f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n[ari]\nurl = "http://127.0.0.1:9"\n'
                       f'[auth]\ntokens_sha256 = ["{digest}"]\n', env={})
    rt = Runtime(cfg)
    yield create_app(rt.service, rt.config, rt.metrics)
    rt.stop()


def refusal_lines(app, caplog, formatter, headers) -> list[str]:
    client = app.test_client()
    with caplog.at_level(logging.WARNING):
        client.get("/click2dial/calls", headers=headers, environ_base={"REMOTE_ADDR": "192.0.2.77"})
    return [formatter.format(r) for r in caplog.records if "request refused" in r.getMessage()]


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_the_filter_bans_the_address_of_a_401(app, caplog, formatter):
    lines = refusal_lines(app, caplog, formatter, {"Authorization": "Bearer guessed"})
    assert lines
    hosts = [m["host"] for line in lines for rx in failregexes() if (m := rx.search(line))]
    assert hosts == ["192.0.2.77"]


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_the_filter_ignores_a_refusal_with_a_valid_token(app, caplog, formatter):
    caplog.clear()
    client = app.test_client()
    with caplog.at_level(logging.WARNING):
        client.get("/click2dial/calls?state=bogus", headers={"Authorization": "Bearer the-token"},
                   environ_base={"REMOTE_ADDR": "192.0.2.77"})
    lines = [formatter.format(r) for r in caplog.records if "request refused" in r.getMessage()]
    assert lines, "a 400 is logged as refused too"
    assert not any(rx.search(line) for line in lines for rx in failregexes())
