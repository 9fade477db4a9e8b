"""Calls of any length stay up, with audio (SPEC §3.9, field reports C32, C33), against the
real Asterisk: a call put on hold (re-INVITE ``a=sendonly``, then ``a=inactive``) is not
cut, a call longer than the trunk's session-timer interval is refreshed (C34), and
``platforma-c2d check`` fails where the PBX would cut held calls or connect
calls without a codec translation path.
"""

from __future__ import annotations

import time

import pytest

from tests.bench.longcalls import hold_uas_scenario
from tests.bench.sipp import uas_scenario
from tests.integration.test_check_modules import run_check, run_check_without_module

AGENT_PORT, TRUNK_PORT = 5071, 5070

HOLD_CUTTER = """
; A test endpoint as another PBX shipped it (C32): held calls dropped after 30 s.
[9001](bench-agent)
aors=9001
rtp_timeout=120
rtp_timeout_hold=30
[9001](c2d-agent-aor)
qualify_frequency=0
"""


def _connected_call(service, call_ref: str) -> str:
    """A REST call of agent 1001 to 0215550100, once connected; its id."""
    r = service.post_call({"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199",
                           "call_ref": call_ref})
    assert r.status_code == 201, r.text
    call_id = r.json()["id"]
    assert service.wait_state(call_id, "connected")["state"] == "connected"
    return call_id


@pytest.fixture
def extra_endpoint(asterisk):
    """Add the HOLD_CUTTER endpoint to the running Asterisk; remove it after the test."""
    conf = asterisk.root / "etc/asterisk/pjsip_site.conf"
    saved = conf.read_text()
    conf.write_text(saved + HOLD_CUTTER)
    asterisk.cli("module reload res_pjsip.so")
    yield
    conf.write_text(saved)
    asterisk.cli("module reload res_pjsip.so")


@pytest.mark.admin_configs
def test_a_call_put_on_hold_then_inactive_stays_up_until_someone_hangs_up(asterisk, make_service, sipp):
    # The agent's phone holds the customer (sendonly, then inactive) for 8 s,
    # takes them back, talks 1 s more and hangs up. No RTP flows at all.
    agent = sipp("agent", AGENT_PORT, hold_uas_scenario(talk_ms=500, hold_ms=4000, inactive_ms=4000,
                                                       after_ms=1000))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200))
    service = make_service()
    call_id = _connected_call(service, "hold-1")
    time.sleep(6)
    bridges = asterisk.bridges()
    assert [len(b["channels"]) for b in bridges if b["id"] == f"c2d-{call_id}"] == [2]
    final = service.wait_state(call_id, "ended", timeout=20)
    assert final["reason"] == "completed" and final["duration_s"] >= 9, final
    # The agent's phone really held: Asterisk answered both re-INVITEs.
    reinvites = [m for m in agent.sent() if m.method == "INVITE"]
    assert len(reinvites) == 3 and "a=inactive" in reinvites[1].text
    assert [m.status for m in agent.received() if m.status and m.status >= 200][:3] == [200, 200, 200]
    # Nobody but the agent ended it: Asterisk sent no BYE to either phone
    # before the agent's own.
    assert not [m for m in agent.received("BYE")]
    assert len(trunk.received("BYE")) == 1


def test_check_passes_the_sample_endpoints_media_settings(asterisk, service):
    res = run_check(service)
    assert "ok   codecs: every codec of the endpoints reaches the trunk (ulaw, alaw)" in res.stdout, res.stdout
    assert not [line for line in res.stdout.splitlines() if line.startswith(("FAIL media", "FAIL codecs"))]


def test_check_fails_where_asterisk_cannot_translate_opus_to_the_trunk(asterisk, service):
    res = run_check_without_module(asterisk, service, "codec_opus_open_source.so")
    assert res.returncode == 1
    fail = [line for line in res.stdout.splitlines() if line.startswith("FAIL codecs: endpoint 2101")]
    assert fail and "opus" in fail[0] and "codec_opus.so or codec_opus_open_source.so not loaded" in fail[0], res.stdout


def test_check_fails_on_an_endpoint_that_hangs_up_held_calls(asterisk, service, extra_endpoint):
    res = run_check(service)
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert any(line.startswith("FAIL media: endpoint 9001 has rtp_timeout_hold=30") for line in lines), res.stdout
    assert any(line.startswith("WARN media: endpoint 9001 has rtp_timeout=120") for line in lines), res.stdout


SESSION_EXPIRES_S = 90   # the shortest PJSIP accepts (its Min-SE floor, RFC 4028's 90 s)


def test_a_call_longer_than_the_session_timer_is_refreshed_and_stays_up(asterisk, make_service, sipp):
    # C34: the trunk answers with Session-Expires: 90;refresher=uac, so
    # Asterisk (the UAC of the callee leg) must refresh within 90 s. Takes
    # 100 s: the interval cannot be shorter, Asterisk refuses a
    # Session-Expires under 90 s.
    sipp("agent", AGENT_PORT, uas_scenario())
    scenario = uas_scenario(ring_ms=200)
    scenario = scenario.replace("Content-Type: application/sdp\n",
                                f"Session-Expires: {SESSION_EXPIRES_S};refresher=uac\nRequire: timer\n"
                                "Content-Type: application/sdp\n")
    trunk = sipp("trunk", TRUNK_PORT, scenario)
    service = make_service()
    call_id = _connected_call(service, "timer-1")
    time.sleep(SESSION_EXPIRES_S + 10)
    # Still up past the interval, both legs in the bridge, nobody sent BYE.
    assert service.get_call(call_id)["state"] == "connected"
    assert [len(b["channels"]) for b in asterisk.bridges() if b["id"] == f"c2d-{call_id}"] == [2]
    received = trunk.received()
    refreshes = [m for m in received[1:] if m.method in ("INVITE", "UPDATE")]
    assert refreshes and refreshes[0].time - received[0].time < SESSION_EXPIRES_S, \
        [m.first_line for m in received]
    assert not trunk.received("BYE")
    assert service.http.delete(f"/click2dial/calls/{call_id}").status_code in (200, 202, 204)
    final = service.wait_state(call_id, "ended", timeout=15)
    assert final["state"] == "ended" and final["duration_s"] >= SESSION_EXPIRES_S + 5, final
