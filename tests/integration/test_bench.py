"""The bench itself: a real Asterisk 22 answers ARI, our Stasis app registers,
SIPp peers reach endpoints, and the service's ``check`` command sees it all."""

from __future__ import annotations

import subprocess
import sys
import time

from testbed.sipp import uas_scenario


def test_asterisk_answers_ari_asterisk_info(asterisk):
    info = asterisk.ari.get("/asterisk/info").json()
    assert info["system"]["version"].startswith("22.")


def test_service_registers_its_stasis_app(asterisk, service):
    apps = {a["name"] for a in asterisk.ari.get("/applications").json()}
    assert "click2dial" in apps
    deadline = time.monotonic() + 5
    while True:  # the filter is set right after the socket connects
        app = asterisk.ari.get("/applications/click2dial").json()
        allowed = {f["type"] for f in app.get("events_allowed", [])}
        if allowed or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {"StasisStart", "ChannelDestroyed", "ChannelDtmfReceived"} <= allowed
    assert "ChannelVarset" not in allowed
    assert service.http.get("/healthz").json() == {
        "status": "ok", "ari_connected": True, "store_writable": True,
        "webhooks": {"pending": 0, "oldest_pending_s": 0.0, "backlog_growing": False}}


def test_sipp_agent_phone_answers_a_call_from_asterisk(asterisk, sipp):
    phone = sipp("agent1001", 5071, uas_scenario(talk_ms=300))
    asterisk.cli("channel originate PJSIP/1001 application Wait 1")
    invites = phone.wait_for(lambda m: m.direction == "received" and m.method == "INVITE")
    assert invites and invites[0].first_line.startswith("INVITE sip:1001@127.0.0.1:5071")
    bye = phone.wait_for(lambda m: m.method == "BYE", timeout=5)
    assert bye, "the phone hung up after 300 ms"


def test_check_command_reports_ari_and_trunk(asterisk, service):
    res = subprocess.run([sys.executable, "-m", "platforma_c2d.cli", "check",
                          "--config", str(service.config_path), "--agent", "1001", "--agent", "7777"],
                         capture_output=True, text=True, timeout=60)
    assert "ok   ari: reachable, Asterisk 22." in res.stdout
    assert "ok   trunk: endpoint PJSIP/trunk exists" in res.stdout
    assert "ok   agent: endpoint PJSIP/1001 exists" in res.stdout
    assert "FAIL agent 7777: endpoint PJSIP/7777 does not exist in Asterisk" in res.stdout
    assert res.returncode == 1


def test_healthz_reports_ari_down_and_post_gets_503(asterisk, make_service):
    svc = make_service({"ari": {"url": "http://127.0.0.1:1"}}, start=False).start(wait_connected=False)
    time.sleep(0.5)
    health = svc.http.get("/healthz")
    assert health.status_code == 503 and health.json()["ari_connected"] is False
    r = svc.post_call({"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199"})
    assert r.status_code == 503 and r.json()["error"] == "asterisk-unavailable"
