"""The PBX's own doors, against the real Asterisk (docs/security.md).

ARI can originate any call on any trunk with any caller ID: the shipped
sample password must never run, and ARI must not answer on the listener
where browsers connect (Asterisk's TLS listener for ``wss://…/ws`` serves
every URI of its HTTP server, ARI included).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.test_check_modules import run_check

TLS_HTTP_CONF = """\
[general]
enabled=yes
bindaddr=127.0.0.1
bindport=8088
session_keep_alive=15000
tlsenable=yes
tlsbindaddr=127.0.0.1:8089
tlscertfile=/etc/asterisk/keys/pbx.example.test.crt
tlsprivatekey=/etc/asterisk/keys/pbx.example.test.key
"""


def fail_lines(res: subprocess.CompletedProcess) -> list[str]:
    return [line for line in res.stdout.splitlines() if line.startswith("FAIL ")]


def test_check_fails_on_the_shipped_ari_password(asterisk, make_service):
    svc = make_service({"ari": {"password": "change-me"}}, start=False)
    res = run_check(svc)
    assert res.returncode == 1
    assert any(line.startswith("FAIL ari.password: the shipped sample password 'change-me'")
               for line in fail_lines(res)), res.stdout
    assert "change-me" not in res.stdout.replace("'change-me'", "").replace("'change-me-agi'", "")


def test_serve_refuses_to_start_with_the_shipped_ari_password(asterisk, make_service):
    svc = make_service({"ari": {"password": "change-me"}}, start=False)
    res = subprocess.run([sys.executable, "-m", "platforma_c2d.cli", "serve",
                          "--config", str(svc.config_path)], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 2 and "config error: ari.password" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.fixture
def tls_listener(asterisk):
    """Asterisk's TLS listener on 127.0.0.1:8089, as http.conf documents it for
    browsers (a self-signed certificate); the shipped http.conf back after."""
    etc = asterisk.root / "etc/asterisk"
    keys = etc / "keys"
    keys.mkdir(exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=pbx.example.test", "-keyout", str(keys / "pbx.example.test.key"),
                    "-out", str(keys / "pbx.example.test.crt")], check=True, capture_output=True)
    saved = (etc / "http.conf").read_text()
    (etc / "http.conf").write_text(TLS_HTTP_CONF)
    asterisk.cli("module reload http")
    try:
        yield "https://127.0.0.1:8089"
    finally:
        (etc / "http.conf").write_text(saved)
        asterisk.cli("module reload http")


def test_check_fails_when_ari_answers_on_the_tls_listener_browsers_use(
        asterisk, make_service, tls_listener):
    svc = make_service(start=False)            # [ari] browser_urls: the default
    res = run_check(svc)
    assert res.returncode == 1, res.stdout
    [line] = [x for x in fail_lines(res) if x.startswith("FAIL ari.browser_urls")]
    assert f"ARI answers at {tls_listener} (HTTP 401)" in line and "/ws" in line


def test_check_passes_with_ari_on_loopback_only(asterisk, make_service):
    svc = make_service(start=False)
    res = run_check(svc)
    assert "ok   ari: not served at https://127.0.0.1:8089 (nothing answers there)" in res.stdout
    assert not [x for x in fail_lines(res) if x.startswith(("FAIL ari", "FAIL agi"))], res.stdout


def test_a_stranger_using_the_trunk_s_name_is_not_taken_for_the_trunk(asterisk, sipp):
    """The trunk has no password: it is known by its address alone
    (identify_by=ip). A stranger whose From user is "trunk" must not be
    matched to it by user name and get into its context."""
    from testbed.sipp import uac_scenario

    scenario = uac_scenario(target="0215550100", from_user="trunk").replace(
        '<recv response="403"', '<recv response="401" optional="true" next="ack_error"/>\n'
        '  <recv response="403"', 1)           # Asterisk's challenge of an unknown caller
    log_before = asterisk.log_path.stat().st_size if asterisk.log_path.exists() else 0
    stranger = sipp("stranger", 5099, scenario, uac_target="127.0.0.1:5060", calls=1)
    finals = stranger.wait_for(lambda m: m.direction == "received" and (m.status or 0) >= 400,
                               timeout=10)
    assert finals and finals[0].status == 401, [m.first_line for m in stranger.messages()]
    # No trunk channel was created for it (only what Asterisk logged since this test began).
    with open(asterisk.log_path, "rb") as log:
        log.seek(log_before)
        assert b"PJSIP/trunk-" not in log.read()


#: An agent written as the shipped pjsip_site.conf writes 1001: its sample password kept.
SAMPLE_AGENT = """
[1005](c2d-agent)
auth=1005
aors=1005
[1005](c2d-auth)
username=1005
password=change-me-1005
[1005](c2d-agent-aor)
"""


@pytest.fixture
def sample_agent(asterisk):
    """Endpoint 1005 with the sample password of pjsip_site.conf; the file back after."""
    site = asterisk.root / "etc/asterisk/pjsip_site.conf"
    saved = site.read_text()
    site.write_text(saved + SAMPLE_AGENT)
    asterisk.cli("module reload res_pjsip.so")
    try:
        yield "1005"
    finally:
        site.write_text(saved)
        asterisk.cli("module reload res_pjsip.so")


def test_check_fails_on_an_agent_left_with_the_sample_sip_password(asterisk, make_service, sample_agent):
    res = run_check(make_service(start=False))
    assert res.returncode == 1, res.stdout
    [line] = [x for x in fail_lines(res) if x.startswith("FAIL pjsip:")]
    assert line.startswith(f"FAIL pjsip: endpoint {sample_agent}: a sample SIP password"), line
    assert f"change-me-{sample_agent}" not in res.stdout


def test_check_warns_on_phones_anyone_can_call_as_by_their_user_name(asterisk, make_service):
    """The bench's phones have no password and Asterisk's default identify_by
    (username,ip): a stranger whose From user is 2001 is taken for 2001. The
    trunk (identify_by=ip) and the browser phone 2101 (a password) are not named."""
    res = run_check(make_service(start=False))
    [line] = [x for x in res.stdout.splitlines() if x.startswith("WARN pjsip:")]
    named = line.split(":")[1].removeprefix(" endpoints ").split(", ")
    assert "2001" in named and "1001" in named, line
    assert "trunk" not in named and "2101" not in named, line
    assert not [x for x in fail_lines(res) if x.startswith("FAIL pjsip")], res.stdout


@pytest.mark.admin_configs
def test_check_warns_when_the_carrier_can_transfer_the_agent_out_of_the_call(asterisk, make_service):
    """A REFER from the trunk moves the agent's leg into the trunk's context.
    Our pjsip.conf refuses it on [trunk] (no warning); an administrator's trunk
    left at Asterisk's default allow_transfer=yes is named with its context."""
    res = run_check(make_service(start=False))
    lines = [x for x in res.stdout.splitlines() if x.startswith("WARN transfer: the trunk endpoint")]
    if os.environ.get("C2D_BENCH_CONFIGS") == "admin":
        assert len(lines) == 1 and "allow_transfer=yes" in lines[0] and "from-trunk" in lines[0], res.stdout
    else:
        assert lines == [], res.stdout
