"""A real browser as the WebRTC client (SPEC §4, §5; field reports C12, C14, C26–C28).

Headless Debian Chromium, driven by playwright-core, loads a page that uses
SIP.js 0.21 (current API: UserAgent / Registerer / Inviter), registers to the
bench Asterisk as the WebRTC endpoint 2101 over ws://127.0.0.1:8088/ws, and
calls 0215550100 with X-Platforma-Outbound-ID / X-Platforma-Call-Ref in the
Inviter's options. The trunk (SIPp UAS on 5070) answers. Checked: the headers
were on the browser's INVITE, the browser got 180 then 200, ICE/DTLS-SRTP came
up, the trunk saw the CLID in From and P-Asserted-Identity and never the
agent's extension, the CDR rows carry the call_ref exactly, the REST API lists
the call (origin webrtc, completed), and nothing is left in Asterisk. The
same call is placed once with the legacy SIP.js 0.7.8 ``SIP.UA`` API, and a
busy callee must give the browser 486.

Needs /usr/bin/chromium, node and tests/browser/node_modules
(scripts/install-browser.sh, run by scripts/test.sh); tests/browser/conftest.py
skips (or, under CI, fails) when they are missing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from testbed.sipmessages import header_values, sip_user
from testbed.sipp import uas_scenario

pytestmark = pytest.mark.browser

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "driver.mjs"
TRUNK_PORT = 5070
AGENT = "2101"  # the WebRTC endpoint of testbed/overlay/pjsip_site.conf
CALLEE, OUTBOUND_ID = "0215550100", "0215550199"


def run_browser(asterisk, service, **cfg) -> dict:
    """Run driver.mjs with ``cfg`` (see its DEFAULTS); return its JSON result."""
    try:
        res = subprocess.run(["node", str(DRIVER), json.dumps(cfg)], cwd=HERE,
                             capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"browser driver hung: {exc.stderr}\n--- asterisk ---\n{asterisk.tail_log()}")
    lines = res.stdout.strip().splitlines()
    context = (f"driver exit {res.returncode}\nstdout: {res.stdout[-4000:]}\nstderr: {res.stderr[-4000:]}"
               f"\n--- asterisk ---\n{asterisk.tail_log(60)}\n--- service ---\n{service.tail_log(40)}")
    assert lines, context
    result = json.loads(lines[-1])
    (service.workdir / "browser-result.json").write_text(json.dumps(result, indent=1))
    result["_context"] = context + f"\n(full browser result: {service.workdir / 'browser-result.json'})"
    return result


def events(result: dict) -> list[str]:
    return [e["what"] for e in result["events"]]


def sent_request(result: dict, method: str) -> list[str]:
    """The SIP requests ``method`` the browser wrote on its WebSocket."""
    return [m for m in result["sent"] if m.startswith(method + " ")]


def assert_browser_call_ok(result: dict, call_ref: str) -> None:
    """The browser registered, sent both headers in its INVITE, rang, was answered."""
    ctx = result["_context"]
    assert result["ok"], f"browser error: {result['error']}\nevents: {result['events']}\n{ctx}"
    seen = events(result)
    assert "registered" in seen, ctx
    assert "rejected" not in seen, f"the PBX refused the call: {result['events']}\n{ctx}"
    assert "established" in seen, f"never established: {result['events']}\n{ctx}"
    # C26: 180 before the answer, then the 200 OK.
    progress = [e["code"] for e in result["events"] if e["what"] == "progress"]
    assert 180 in progress, result["events"]
    assert [e["code"] for e in result["events"] if e["what"] == "accepted"] == [200]
    # C12: both headers on the wire, in the INVITE itself.
    invites = sent_request(result, "INVITE")
    assert len(invites) == 2, invites  # the first is challenged (401), the second authenticated
    for invite in invites:
        assert invite.startswith(f"INVITE sip:{CALLEE}@127.0.0.1 SIP/2.0"), invite
        assert header_values(invite, "X-Platforma-Outbound-ID") == [OUTBOUND_ID], invite
        assert header_values(invite, "X-Platforma-Call-Ref") == [call_ref], invite
    # Media: ICE + DTLS-SRTP came up on loopback and the fake microphone was sent.
    media = result["media"]
    assert media and media["connectionState"] == "connected", media
    assert media["packetsSent"] > 10, media


def assert_trunk_saw_clid_only(trunk) -> None:
    """SPEC §3.2, §3.7: CLID in From and PAI; the agent's extension nowhere."""
    invites = trunk.received("INVITE")
    assert len(invites) == 1, [m.first_line for m in trunk.received()]
    invite = invites[0]
    assert invite.first_line.startswith(f"INVITE sip:{CALLEE}@"), invite.first_line
    assert sip_user(invite.header("From")[0]) == OUTBOUND_ID, invite.header("From")
    assert [sip_user(v) for v in invite.header("P-Asserted-Identity")] == [OUTBOUND_ID]
    for msg in trunk.received():
        for name in ("From", "P-Asserted-Identity", "Remote-Party-ID", "Contact"):
            for value in msg.header(name):
                assert AGENT not in sip_user(value), f"{msg.first_line}: {name}: {value}"
                assert "Agent 2101" not in value, f"{msg.first_line}: {name}: {value}"


def listed_call(service, call_ref: str) -> dict:
    """The call of ``call_ref`` in ``GET /click2dial/calls`` (asserts exactly one)."""
    r = service.http.get("/click2dial/calls", params={"limit": 200})
    assert r.status_code == 200, r.text
    calls = [c for c in r.json()["calls"] if c["call_ref"] == call_ref]
    assert len(calls) == 1, r.json()
    return calls[0]


def wait_ended(service, call_id: str) -> dict:
    return service.wait_state(call_id, "ended", timeout=15)


def assert_cdr(asterisk, call_id: str, call_ref: str, answered: bool = True) -> list[dict]:
    """SPEC §5: every CDR row of the call, the browser's included, carries call_ref exactly.

    The browser's channel is not originated by the app: its row is tagged
    only if the app sets the CDR variables on it when the call enters
    Stasis (for an unanswered call nothing else would tag it).
    """
    rows = asterisk.wait_cdr_rows(lambda r: r["c2d_call_id"] == call_id or r["call_ref"] == call_ref,
                                  count=2)
    browser = [r for r in rows if r["channel"].startswith(f"PJSIP/{AGENT}-")]
    # The callee leg's row: the trunk channel's own, or (dialled through the
    # dialplan, ADR 0014) the row of Local ;2 whose Party B is the trunk channel.
    trunk = [r for r in rows if r["channel"].startswith("PJSIP/trunk-")
             or (r["channel"].startswith("Local/") and r["dstchannel"].startswith("PJSIP/trunk-"))]
    assert len(browser) == 1 and len(trunk) == 1, f"rows of {call_id}: {rows}\nall rows: {asterisk.cdr_rows()}"
    for row in rows:
        assert row["call_ref"] == call_ref and row["c2d_call_id"] == call_id, row
    assert browser[0]["c2d_leg"] == "agent" and trunk[0]["c2d_leg"] == "callee", rows
    assert browser[0]["dcontext"] == "c2d-webrtc" and browser[0]["dst"] == CALLEE, browser
    if answered:
        assert browser[0]["disposition"] == "ANSWERED", browser
        # bridged to the callee leg (the trunk channel, or the Local channel dialling it)
        assert browser[0]["dstchannel"].startswith(("PJSIP/trunk-", f"Local/{CALLEE}@")), browser
    else:
        assert all(r["disposition"] != "ANSWERED" for r in rows), rows
    return rows


def test_browser_calls_and_hangs_up(asterisk, service, sipp):
    """Browser → 180 while the callee rings 1 s → answered → BYE from the browser after 2 s."""
    call_ref = "ord-42:web_rtc~1.0"
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=1000))
    result = run_browser(asterisk, service, callee=CALLEE, outboundId=OUTBOUND_ID,
                         callRef=call_ref, hangupAfterMs=2000)
    assert_browser_call_ok(result, call_ref)
    seen = events(result)
    assert "bye-sent" in seen and "bye-received" not in seen, result["events"]
    assert len(sent_request(result, "BYE")) == 1

    call = listed_call(service, call_ref)
    call = wait_ended(service, call["id"])
    assert call["origin"] == "webrtc" and call["state"] == "ended", call
    assert call["reason"] == "completed", call
    assert (call["agent"], call["callee"], call["outbound_id"], call["clid"]) == \
        (AGENT, CALLEE, OUTBOUND_ID, OUTBOUND_ID), call
    assert 1.0 <= call["duration_s"] <= 5.0, call

    assert_trunk_saw_clid_only(trunk)
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "BYE"), \
        "the trunk leg was not hung up after the browser's BYE"
    assert_cdr(asterisk, call["id"], call_ref)
    channels, bridges = asterisk.wait_idle()
    assert channels == [] and bridges == []


def test_callee_hangs_up_and_a_230_char_call_ref_arrives_intact(asterisk, service, sipp):
    """The trunk hangs up after 2 s: the browser gets a BYE. C14: 230 chars end to end."""
    call_ref = ("ref-" + "aB9.-_~:" * 40)[:230]
    assert len(call_ref) == 230
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=300, talk_ms=2000))
    result = run_browser(asterisk, service, callee=CALLEE, outboundId=OUTBOUND_ID,
                         callRef=call_ref, waitBye=True)
    assert_browser_call_ok(result, call_ref)
    seen = events(result)
    assert "bye-received" in seen and "bye-sent" not in seen, result["events"]
    assert sent_request(result, "BYE") == []

    call = wait_ended(service, listed_call(service, call_ref)["id"])
    assert call["origin"] == "webrtc" and call["reason"] == "completed", call
    assert call["call_ref"] == call_ref
    assert_trunk_saw_clid_only(trunk)
    assert_cdr(asterisk, call["id"], call_ref)
    channels, bridges = asterisk.wait_idle()
    assert channels == [] and bridges == []


def test_legacy_sip_ua_api_places_the_same_call(asterisk, service, sipp):
    """C27: an older integration on SIP.js 0.7.8 (``new SIP.UA``, headers in
    ``ua.invite(target, {extraHeaders})``) works against the same endpoint."""
    call_ref = "legacy-ua:0.7.8"
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=500))
    result = run_browser(asterisk, service, page="legacy.html", callee=CALLEE,
                         outboundId=OUTBOUND_ID, callRef=call_ref, hangupAfterMs=1500)
    assert_browser_call_ok(result, call_ref)
    assert any("User-Agent: SIP.js/0.7.8" in m for m in sent_request(result, "INVITE"))
    assert len(sent_request(result, "BYE")) == 1
    call = wait_ended(service, listed_call(service, call_ref)["id"])
    assert call["origin"] == "webrtc" and call["reason"] == "completed", call
    assert_trunk_saw_clid_only(trunk)
    assert_cdr(asterisk, call["id"], call_ref)
    channels, bridges = asterisk.wait_idle()
    assert channels == [] and bridges == []


def test_callee_busy_gives_the_browser_486(asterisk, service, sipp):
    """SPEC §4: callee busy → 486 to the browser after 180; nothing answered."""
    call_ref = "busy-from-browser"
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=500, reject_code=486))
    result = run_browser(asterisk, service, callee=CALLEE, outboundId=OUTBOUND_ID, callRef=call_ref)
    ctx = result["_context"]
    assert result["ok"], f"browser error: {result['error']}\n{ctx}"
    seen = events(result)
    assert "established" not in seen, result["events"]
    assert [e["code"] for e in result["events"] if e["what"] == "progress"][:1] == [180], result["events"]
    assert [e["code"] for e in result["events"] if e["what"] == "rejected"] == [486], result["events"]

    call = wait_ended(service, listed_call(service, call_ref)["id"])
    assert call["origin"] == "webrtc" and call["reason"] == "callee_busy", call
    assert call["answered_at"] is None and call["duration_s"] == 0, call
    assert_trunk_saw_clid_only(trunk)
    channels, bridges = asterisk.wait_idle()
    assert channels == [] and bridges == []

    assert_cdr(asterisk, call["id"], call_ref, answered=False)
