"""Calls of any length stay up, with audio (SPEC §3.9, field reports C32, C33), against the
real Asterisk: a call put on hold (re-INVITE ``a=sendonly``, then ``a=inactive``) is not
cut, a call longer than the trunk's session-timer interval is refreshed (C34), and
``platforma-c2d check`` fails where the PBX would cut held calls or connect
calls without a codec translation path.
"""

from __future__ import annotations

import contextlib
import time

import pytest

from platforma_c2d.store.journal import Journal
from testbed.longcalls import PCAP_PCMA_S, hold_uas_scenario, late_rtp_uas_scenario, refreshing_uac_scenario
from testbed.sipp import uas_scenario
from tests.integration.test_check_modules import run_check, run_check_without_module

AGENT_PORT, TRUNK_PORT, PHONE_PORT = 5071, 5070, 5081

HOLD_CUTTER = """
; A test endpoint as another PBX shipped it (C32): held calls dropped after 30 s,
; and transfers allowed (Asterisk's default).
[9001](bench-agent)
aors=9001
rtp_timeout=120
rtp_timeout_hold=30
allow_transfer=yes
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


@contextlib.contextmanager
def _pjsip_added(asterisk, file: str, text: str):
    """``text`` appended to ``file`` of the running Asterisk's PJSIP config, then taken out."""
    conf = asterisk.root / "etc/asterisk" / file
    saved = conf.read_text()
    conf.write_text(saved + text)
    asterisk.cli("module reload res_pjsip.so")
    try:
        yield
    finally:
        conf.write_text(saved)
        asterisk.cli("module reload res_pjsip.so")


@pytest.fixture
def extra_endpoint(asterisk):
    """Add the HOLD_CUTTER endpoint to the running Asterisk; remove it after the test."""
    with _pjsip_added(asterisk, "pjsip_site.conf", HOLD_CUTTER):
        yield


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


RTP_TIMEOUT_S = 6
# An administrator's trunk that hangs up a call after RTP_TIMEOUT_S s without RTP
# (C32: where the timer counted from the SDP exchange, a long ring cut the call at
# the answer). Added beside the configured trunk, on both config sets; the
# service dials it through [dial] trunk_endpoint.
RTP_TIMEOUT_TRUNK = f"""
[rtp-timeout-trunk]
type=endpoint
context=c2d-from-trunk
disallow=all
allow=ulaw,alaw
direct_media=no
aors=rtp-timeout-trunk
rtp_timeout={RTP_TIMEOUT_S}
[rtp-timeout-trunk]
type=aor
contact=sip:127.0.0.1:{TRUNK_PORT}
"""


@pytest.fixture
def rtp_timeout_trunk(asterisk):
    """RTP_TIMEOUT_TRUNK added to pjsip.conf of the running Asterisk; removed after the test."""
    with _pjsip_added(asterisk, "pjsip.conf", RTP_TIMEOUT_TRUNK):
        assert "rtp-timeout-trunk" in asterisk.cli("pjsip show endpoint rtp-timeout-trunk")
        yield "PJSIP/{number}@rtp-timeout-trunk"


@pytest.mark.admin_configs
def test_a_callee_who_rings_long_and_sends_rtp_late_is_not_cut(asterisk, make_service, sipp, rtp_timeout_trunk):
    # C32 with short timers: the callee rings twice the trunk's rtp_timeout
    # (and longer than the bench's ring timeouts), answers, sends no RTP for
    # 2 s, then about 6.8 s of it, and hangs up 8.5 s after the answer.
    ring_s, talk_s = 2 * RTP_TIMEOUT_S, 8.5
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, late_rtp_uas_scenario(ring_ms=ring_s * 1000, rtp_after_ms=2000,
                                                            talk_ms=int(talk_s * 1000)))
    assert talk_s < 2 + PCAP_PCMA_S + RTP_TIMEOUT_S
    service = make_service({"dial": {"trunk_endpoint": rtp_timeout_trunk, "callee_ring_timeout_s": 30}})
    r = service.post_call({"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199",
                           "call_ref": "late-rtp"})
    assert r.status_code == 201, r.text
    call_id = r.json()["id"]
    final = service.wait_state(call_id, "ended", timeout=ring_s + talk_s + 15)
    # Ended by the callee's own BYE after talking, not by Asterisk at the answer.
    assert final["reason"] == "completed" and final["duration_s"] >= talk_s - 0.5, final
    [bye] = [m for m in trunk.sent() if m.method == "BYE"]
    answer = [m for m in trunk.sent() if m.status == 200 and "INVITE" in m.header("CSeq")[0]][0]
    assert bye.time - answer.time >= talk_s - 0.2
    # Asterisk hung up neither phone on its own: the trunk got no BYE, the
    # agent's one came after the callee's.
    assert not trunk.received("BYE")
    [agent_bye] = agent.received("BYE")
    assert agent_bye.time >= bye.time
    assert "for lack of audio RTP activity" not in asterisk.tail_log(200)


@pytest.mark.admin_configs
def test_a_call_cut_by_the_trunks_rtp_timeout_says_so(asterisk, make_service, sipp, rtp_timeout_trunk):
    """A callee that answers and sends no audio on a trunk with ``rtp_timeout``:
    Asterisk hangs the call up after RTP_TIMEOUT_S s (the promise of SPEC §3.9
    is the administrator's to keep, and check warns). The call ends ``failed``
    by the ``system`` with the hangup cause Asterisk gave, and the journal
    names Asterisk's rtp_timeout, not a ``completed`` call the callee hung up
    (the callee leg is a Local channel whose Dial() reached the trunk: only the
    trunk's channel itself says 44)."""
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())   # answers, never sends RTP, waits for BYE
    service = make_service({"dial": {"trunk_endpoint": rtp_timeout_trunk}})
    call_id = _connected_call(service, "rtp-cut")
    # The app follows the trunk's channel, the one Asterisk will cut.
    assert _trunk_channels_followed(asterisk, "rtp-timeout-trunk") == [True]
    final = service.wait_state(call_id, "ended", timeout=RTP_TIMEOUT_S + 15)
    # Asterisk cut the trunk's leg (its BYE), then the service the agent's.
    assert trunk.received("BYE"), trunk.messages()
    assert "for lack of audio RTP activity" in asterisk.tail_log(200)
    assert (final["reason"], final["ended_by"], final["cause"]) == ("failed", "system", 44), final
    assert final["answered_at"] is not None and final["duration_s"] >= RTP_TIMEOUT_S - 1, final
    detail = Journal(service.store_url).events(call_id)[-1]["detail"]
    assert "callee leg cut by Asterisk (cause 44)" in detail and "rtp_timeout" in detail, detail
    assert agent.wait_for(lambda m: m.direction == "received" and m.method == "BYE")


def _trunk_channels_followed(asterisk, endpoint: str) -> list[bool]:
    """For each channel of PJSIP ``endpoint`` in Asterisk now, whether the service's
    app is subscribed to it (``GET /ari/applications/click2dial``, ``channel_ids``)."""
    followed = set(asterisk.ari.get("/applications/click2dial").json()["channel_ids"])
    return [c["id"] in followed for c in asterisk.channels() if c["name"].startswith(f"PJSIP/{endpoint}-")]


def test_a_trunk_without_rtp_timers_is_not_followed_and_its_calls_end_as_the_callee_did(asterisk, make_service, sipp):
    """The trunk's channel of a call is followed only where Asterisk may cut it
    (calls/far_ends.py): on the sample trunk (no rtp_timeout) the app subscribes
    to none, and the callee's BYE still ends the call completed by the callee, 16."""
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=2000))
    service = make_service()
    call_id = _connected_call(service, "no-rtp-timer")
    assert _trunk_channels_followed(asterisk, "trunk") == [False]
    final = service.wait_state(call_id, "ended", timeout=15)
    assert (final["reason"], final["ended_by"], final["cause"]) == ("completed", "callee", 16), final
    assert [m for m in trunk.sent() if m.method == "BYE"]


def test_check_passes_the_sample_endpoints_media_settings(asterisk, service):
    res = run_check(service)
    assert "ok   codecs: every codec of the endpoints reaches the trunk (ulaw, alaw)" in res.stdout, res.stdout
    assert not [line for line in res.stdout.splitlines()
                if line.startswith(("FAIL media", "FAIL codecs", "WARN transfer"))], res.stdout


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
    assert any(line.startswith("WARN transfer: endpoint 9001 has allow_transfer=yes") for line in lines), res.stdout


SESSION_EXPIRES_S = 90   # the shortest PJSIP accepts (its Min-SE floor, RFC 4028's 90 s)


def _with_session_timer(scenario: str) -> str:
    """A UAS scenario whose 200 OK sets ``Session-Expires: 90;refresher=uac``: the caller
    (Asterisk) must refresh the session within 90 s."""
    return scenario.replace("Content-Type: application/sdp\n",
                            f"Session-Expires: {SESSION_EXPIRES_S};refresher=uac\nRequire: timer\n"
                            "Content-Type: application/sdp\n")


def _dialogs(peer) -> dict[str, list]:
    """The peer's messages by Call-ID, in order."""
    found: dict[str, list] = {}
    for m in peer.messages():
        found.setdefault((m.header("Call-ID") or m.header("i") or [""])[0], []).append(m)
    return found


def _refreshed_in_time(messages: list) -> bool:
    """Asterisk refreshed this dialog (re-INVITE or UPDATE) between a third of the
    interval and the interval after its INVITE: a session refresh, not a
    connected-line update at the answer."""
    start = messages[0].time
    return any(m.direction == "received" and m.method in ("INVITE", "UPDATE")
               and SESSION_EXPIRES_S / 3 < m.time - start < SESSION_EXPIRES_S for m in messages[1:])


FORGETFUL_PORT, NO_TIMERS_PORT = 5083, 5084


def _phone(name: str, port: int, extra: str = "") -> str:
    """A phone endpoint of the browser path (context c2d-webrtc) on SIPp port ``port``."""
    return f"""
[{name}]
type=endpoint
context=c2d-webrtc
disallow=all
allow=ulaw
send_connected_line=no
aors={name}
{extra}[{name}]
type=aor
contact=sip:{name}@127.0.0.1:{port}
[{name}]
type=identify
endpoint={name}
match=127.0.0.1:{port}
"""


@pytest.fixture
def forgetful_phones(asterisk):
    """Two phones that will never refresh a session timer: 2008 with Asterisk's
    defaults, 2009 with ``timers=no`` (the remedy docs/configuration.md gives)."""
    with _pjsip_added(asterisk, "pjsip.conf", _phone("2008", FORGETFUL_PORT)
                      + _phone("2009", NO_TIMERS_PORT, "timers=no\n")):
        yield


def _phone_in(sipp, name: str, port: int, from_user: str, callee: str, ref: str, **kw):
    """``from_user`` calls ``callee`` with Session-Expires: 90 and no refresher."""
    return sipp(name, port, refreshing_uac_scenario(
        target=callee, from_user=from_user, session_expires=SESSION_EXPIRES_S,
        headers=["X-Platforma-Outbound-ID: 0215550199", f"X-Platforma-Call-Ref: {ref}"], **kw),
        uac_target="127.0.0.1:5060", calls=1)


def _answer(phone):
    """The 200 OK to the phone's INVITE."""
    [answer] = [m for m in phone.received() if m.status == 200 and "INVITE" in m.header("CSeq")[0]]
    return answer


@pytest.mark.admin_configs
def test_calls_longer_than_the_session_timer_interval_are_refreshed_on_every_leg(
        asterisk, make_service, sipp, forgetful_phones):
    # C34, both sides of Asterisk at once (the interval cannot be shorter:
    # Asterisk refuses a Session-Expires under 90 s; pjsip hangs up an
    # unrefreshed session at 60 s of 90):
    # * a REST call whose agent's phone and trunk both answer with
    #   Session-Expires: 90;refresher=uac, so Asterisk must refresh both legs;
    # * a phone (2001, the browser stand-in) that calls in with
    #   Session-Expires: 90 and no refresher, and refreshes as the answer
    #   tells it (an UPDATE at 40 s and at 80 s), then hangs up at 110 s;
    # * and, for what docs/configuration.md says of phones that never refresh:
    #   2008 and 2009 call in the same way and never refresh, then hang up
    #   at 75 s; 2009's endpoint has timers=no.
    agent = sipp("agent", AGENT_PORT, _with_session_timer(uas_scenario()))
    trunk = sipp("trunk", TRUNK_PORT, _with_session_timer(uas_scenario(ring_ms=200)))
    service = make_service()
    call_id = _connected_call(service, "timer-1")
    phone = _phone_in(sipp, "phone", PHONE_PORT, "2001", "0215550101", "timer-2",
                      refresh_ms=40_000, refreshes=2, tail_ms=30_000)
    forgetful = _phone_in(sipp, "forgetful", FORGETFUL_PORT, "2008", "0215550102", "timer-3",
                          refresh_ms=1, refreshes=0, tail_ms=75_000)
    no_timers = _phone_in(sipp, "no-timers", NO_TIMERS_PORT, "2009", "0215550103", "timer-4",
                          refresh_ms=1, refreshes=0, tail_ms=75_000)
    time.sleep(SESSION_EXPIRES_S + 10)

    # The REST call: still up past the interval, both legs in the bridge,
    # each leg refreshed by Asterisk in time, nobody sent BYE.
    assert service.get_call(call_id)["state"] == "connected"
    assert [len(b["channels"]) for b in asterisk.bridges() if b["id"] == f"c2d-{call_id}"] == [2]
    [agent_dialog] = _dialogs(agent).values()
    assert _refreshed_in_time(agent_dialog), [(m.first_line, m.time) for m in agent_dialog]
    trunk_dialogs = {d[0].first_line.split("sip:", 1)[1].split("@", 1)[0]: d for d in _dialogs(trunk).values()}
    assert sorted(trunk_dialogs) == ["0215550100", "0215550101", "0215550102", "0215550103"]
    assert all(_refreshed_in_time(d) for d in trunk_dialogs.values()), \
        [[m.first_line for m in d] for d in trunk_dialogs.values()]
    assert not agent.received("BYE")
    assert not [m for n in ("0215550100", "0215550101") for m in trunk_dialogs[n] if m.method == "BYE"], \
        {n: [(m.first_line, round(m.time - d[0].time, 1)) for m in d] for n, d in trunk_dialogs.items()}
    assert service.http.delete(f"/click2dial/calls/{call_id}").status_code in (200, 202, 204)
    final = service.wait_state(call_id, "ended", timeout=15)
    assert final["state"] == "ended" and final["duration_s"] >= SESSION_EXPIRES_S + 5, final

    # The phone's call: Asterisk's answer named the refresher (no room for
    # "each side believed the other would refresh"); the phone, refresher as
    # told, had each refresh accepted; Asterisk never hung up on it.
    assert phone.wait(timeout=30) == 0, phone.messages()[-3:]
    answer = _answer(phone)
    assert answer.header("Session-Expires") == [f"{SESSION_EXPIRES_S};refresher=uac"], answer.text
    updates = [m for m in phone.received() if m.status == 200 and "UPDATE" in m.header("CSeq")[0]]
    assert len(updates) == 2 and not phone.received("BYE")
    [phone_call] = [c for c in service.http.get("/click2dial/calls").json()["calls"] if c["call_ref"] == "timer-2"]
    phone_call = service.wait_state(phone_call["id"], "ended", timeout=15)
    assert phone_call["reason"] == "completed" and phone_call["duration_s"] >= SESSION_EXPIRES_S + 5, phone_call

    # The phone that never refreshes, though named the refresher, is hung up by
    # Asterisk at two thirds of the interval (C34's fixed-length calls) ...
    assert forgetful.wait(timeout=10) == 0 and no_timers.wait(timeout=10) == 0
    answer = _answer(forgetful)
    assert answer.header("Session-Expires") == [f"{SESSION_EXPIRES_S};refresher=uac"], answer.text
    [bye] = forgetful.received("BYE")
    assert 55 <= bye.time - answer.time <= 70, bye.time - answer.time
    # ... and with timers=no on its endpoint Asterisk asks for no session
    # timer and talks until the phone hangs up.
    answer = _answer(no_timers)
    assert not answer.header("Session-Expires") and not no_timers.received("BYE"), answer.text
    calls = {c["call_ref"]: c for c in service.http.get("/click2dial/calls").json()["calls"]}
    assert calls["timer-4"]["state"] == "ended" and calls["timer-4"]["duration_s"] >= 74, calls["timer-4"]
    assert calls["timer-3"]["state"] == "ended" and calls["timer-3"]["duration_s"] < 70, calls["timer-3"]
