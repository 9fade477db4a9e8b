"""The pages of SPEC §13 without a browser: login exchange, cookie rules,
CSP, the rules JSON, and the SIP.js copy shipped in the package.

What the pages do in a browser against the real Asterisk is in
tests/browser/test_pages.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from platforma_c2d import rules
from platforma_c2d.config import loads_config
from platforma_c2d.http import create_app
from platforma_c2d.http.auth import Authenticator
from platforma_c2d.http.sessions import COOKIE, PageSessions
from platforma_c2d.runtime import Runtime

TOKEN = "page-test-token"
LIMITED = "limited-token"
REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "platforma_c2d/http/static"
VENDORED = STATIC / "vendor/sip.js"
LOCK = REPO / "tests/browser/package-lock.json"
NPM_COPY = REPO / "tests/browser/node_modules/sip.js"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def runtime(tmp_path):
    cfg = loads_config(
        f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n[ari]\nurl = "http://127.0.0.1:9"\n'
        f'[auth]\ntokens_sha256 = ["{_digest(TOKEN)}"]\n'
        f'[[auth.token]]\nsha256 = "{_digest(LIMITED)}"\nname = "crm-team-a"\nagents = ["2101"]\n'
        '[pages]\nwebsocket_urls = ["wss://pbx.example.com:8089/ws", "ws://127.0.0.1:8088/ws"]\n',
        env={})
    rt = Runtime(cfg)
    yield rt
    rt.stop()


@pytest.fixture
def client(runtime):
    return create_app(runtime.service, runtime.config, runtime.metrics).test_client()


def _login(client, token=TOKEN):
    return client.post("/click2dial/pages/session", json={"token": token})


def test_pages_are_served_with_a_strict_content_security_policy(client):
    for path in ("/click2dial/phone/", "/click2dial/board/"):
        r = client.get(path)
        assert r.status_code == 200 and r.mimetype == "text/html", path
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "connect-src 'self' wss://pbx.example.com:8089/ws ws://127.0.0.1:8088/ws;" in csp
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        html = r.get_data(as_text=True)
        # No inline script or style for the CSP to block: every script has a src.
        assert not re.search(r"<script(?![^>]*\bsrc=)", html) and "<style" not in html and " style=" not in html
        assert r.headers["Cache-Control"] == "no-store"


def test_the_login_exchanges_the_token_for_an_httponly_strict_cookie(client):
    assert client.get("/click2dial/pages/config").status_code == 401
    assert client.get("/click2dial/pages/session").get_json() == {"active": False}
    r = _login(client)
    assert r.status_code == 200 and r.get_json() == {"caller": "token-1", "expires_in_s": 3600}
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and TOKEN not in cookie
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/click2dial", "Max-Age=3600"):
        assert attr in cookie, cookie
    assert client.get("/click2dial/pages/session").get_json() == {"active": True}
    conf = client.get("/click2dial/pages/config").get_json()
    assert conf["caller"] == "token-1" and conf["agents"] == []
    assert conf["sip"]["websocket_urls"] == ["wss://pbx.example.com:8089/ws", "ws://127.0.0.1:8088/ws"]
    assert conf["clids"] == {"default": "0115550000", "allowed": []}
    # The numbers the phone offers come from the pools' own route, with the cookie.
    pools = client.get("/click2dial/clids").get_json()["pools"]
    assert [(p["name"], [n["number"] for n in p["numbers"]]) for p in pools] == \
        [("default", ["0115550001", "0115550002"])]
    # The cookie reads the API...
    assert client.get("/click2dial/calls").status_code == 200
    # ...and never writes: placing or cancelling a call needs the token itself.
    r = client.post("/click2dial/calls", json={"agent": "2101", "callee": "0215550100", "outbound_id": "random"})
    assert r.status_code == 401
    assert client.delete("/click2dial/calls/" + "f" * 32).status_code == 401


def test_a_bad_token_opens_no_session(client):
    for body in ({"token": "wrong"}, {"token": ""}, {"token": 42}, {}, []):
        r = client.post("/click2dial/pages/session", json=body)
        assert r.status_code == 401 and r.get_json()["error"] == "unauthorized", body
        assert "Set-Cookie" not in r.headers
    assert client.post("/click2dial/pages/session", data="token=x").status_code == 415


def test_a_limited_token_keeps_its_limits_in_the_page(client):
    assert _login(client, LIMITED).status_code == 200
    conf = client.get("/click2dial/pages/config").get_json()
    assert conf["caller"] == "crm-team-a" and conf["agents"] == ["2101"]


def test_logout_removes_the_cookie(client):
    _login(client)
    r = client.delete("/click2dial/pages/session")
    assert r.status_code == 204 and f"{COOKIE}=;" in r.headers["Set-Cookie"]
    assert client.get("/click2dial/pages/config").status_code == 401


def test_a_forged_or_expired_cookie_is_refused(runtime):
    now = [1_000_000.0]
    auth = Authenticator(runtime.config.auth)
    sessions = PageSessions(auth, ttl_s=60, clock=lambda: now[0])
    caller, cookie = sessions.open(TOKEN)
    assert sessions.caller(cookie) == caller
    now[0] += 59
    assert sessions.caller(cookie) == caller
    now[0] += 2
    assert sessions.caller(cookie) is None
    assert sessions.caller(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None
    # Another process (a restart) has another key: its cookies are not ours.
    other = PageSessions(auth, ttl_s=60, clock=lambda: now[0])
    assert other.caller(sessions.open(TOKEN)[1]) is None


def test_rules_json_is_the_api_contract(client):
    data = client.get("/click2dial/rules").get_json()
    fields = data["fields"]
    assert fields["callee"]["formats"] == rules.CALLEE_FORMATS
    assert fields["call_ref"]["max_length"] == rules.CALL_REF_MAX
    assert data["messages"]["invalid_value"] == rules.MSG_INVALID_VALUE
    # The patterns accept and refuse what the server's rules do.
    samples = ["0215550100", "27215550100", "0021555010012", "021555010", "+27215550100", "0215550100\n",
               "random", "Random", "0215550199", " 0215550100", "١٢٣٤٥٦٧٨٩٠"]
    for value in samples:
        assert (re.fullmatch(fields["callee"]["pattern"].strip("^$"), value) is not None) == \
            rules.is_callee_number(value), value
        assert (re.fullmatch(fields["outbound_id"]["pattern"].strip("^$"), value) is not None) == \
            rules.is_outbound_id(value), value


def test_the_api_answers_with_the_messages_the_page_builds(client):
    """The templates given to the page are the ones the API fills in."""
    r = client.post("/click2dial/calls", headers={"Authorization": f"Bearer {TOKEN}"},
                    json={"agent": "2101", "callee": "12345", "outbound_id": "0215550199", "call_ref": "a b"})
    fields = r.get_json()["details"]["fields"]
    assert fields["callee"] == rules.MSG_INVALID_VALUE.format(value="'12345'", formats=rules.CALLEE_FORMATS)
    assert fields["call_ref"] == rules.MSG_INVALID_CHARACTER.format(
        char="' '", position=2, value="'a b'", formats=rules.CALL_REF_FORMATS)


def test_the_shipped_sip_js_is_the_pinned_version_file_for_file():
    pinned = json.loads(LOCK.read_text())["packages"]["node_modules/sip.js"]["version"]
    shipped = json.loads((VENDORED / "package.json").read_text())
    assert shipped["name"] == "sip.js" and shipped["version"] == pinned
    assert (VENDORED / "LICENSE.md").read_text().startswith("MIT License")
    sums = dict(reversed(line.split("  ", 1)) for line in (VENDORED / "SHA256SUMS").read_text().splitlines())
    modules = sorted(str(p.relative_to(VENDORED)) for p in VENDORED.rglob("*.js"))
    assert modules == sorted(sums) and "lib/index.js" in sums
    for name, digest in sums.items():
        assert hashlib.sha256((VENDORED / name).read_bytes()).hexdigest() == digest, name
    if (NPM_COPY / "package.json").is_file():  # installed by scripts/install-browser.sh
        assert json.loads((NPM_COPY / "package.json").read_text())["version"] == pinned
        npm = sorted(str(p.relative_to(NPM_COPY)) for p in (NPM_COPY / "lib").rglob("*.js"))
        assert npm == modules
        for name in modules:
            assert (NPM_COPY / name).read_bytes() == (VENDORED / name).read_bytes(), name


def test_the_assets_are_served_from_the_package(client):
    r = client.get("/click2dial/assets/vendor/sip.js/lib/index.js")
    assert r.status_code == 200 and "javascript" in r.mimetype
    assert client.get("/click2dial/assets/phone.js").status_code == 200
    assert client.get("/click2dial/assets/../pages.py").status_code == 404


def test_the_board_reads_the_event_stream_with_its_cookie(client):
    """EventSource sends no Authorization header: the page session opens the stream."""
    assert client.get("/click2dial/events", headers={"Accept": "application/json"}).status_code == 401
    _login(client)
    conf = client.get("/click2dial/pages/config").get_json()
    assert conf["last_event_id"] == 0  # where the board's stream starts: nothing stored yet
    r = client.get(f"/click2dial/events?after={conf['last_event_id']}", headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.get_json()["events"] == []


def test_the_pages_label_every_call_state_in_its_order():
    """The pages' one list of states (common.js STATES, whose key order the
    board ranks calls and subscribes to events by) is the service's."""
    from platforma_c2d.calls.model import State

    js = (STATIC / "common.js").read_text()
    block = re.search(r"export const STATES = \{(.*?)\};", js, re.S).group(1)
    assert re.findall(r"^\s*(\w+):", block, re.M) == [s.value for s in State]
