"""The agent on a browser phone (field report C39), in headless Chromium with SIP.js 0.21.

A REST call whose agent is the WebRTC endpoint 2101: the browser, registered
over ws://127.0.0.1:8088/ws, rings; the agent answers in the browser; the
callee (SIPp trunk) is dialled and bridged; the call stays up past SIP.js's
transaction timers (about 32 s without the ACK of its 200 OK), the agent
hangs up after 45 s, and the journal says ``completed``.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from testbed.sipp import uas_scenario
from tests.browser.test_browser_call import (
    AGENT,
    DRIVER,
    HERE,
    TRUNK_PORT,
)

pytestmark = pytest.mark.browser
TALK_S = 45


def test_a_rest_call_rings_the_agents_browser_and_stays_up_past_sip_js_timers(asterisk, make_service, sipp):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=300))
    service = make_service({"dial": {"agent_ring_timeout_s": 20}})
    cfg = {"answerIncoming": True, "talkMs": TALK_S * 1000, "answerTimeoutMs": 30000}
    browser = subprocess.Popen(["node", str(DRIVER), json.dumps(cfg)], cwd=HERE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = browser.stdout.readline()
        assert json.loads(first or "{}").get("registered"), first + browser.stderr.read()[-2000:]
        r = service.post_call({"agent": AGENT, "callee": "0215550100", "outbound_id": "0215550199",
                               "call_ref": "browser-agent-1"})
        assert r.status_code == 201, r.text
        call_id = r.json()["id"]
        assert service.wait_state(call_id, "connected", timeout=30)["state"] == "connected"
        out, err = browser.communicate(timeout=TALK_S + 60)
    finally:
        if browser.poll() is None:
            browser.kill()
    lines = out.strip().splitlines()
    assert lines, f"the browser printed nothing: {err[-3000:]}\n{service.tail_log(40)}"
    result = json.loads(lines[-1])
    ctx = f"{result.get('error')}\nevents: {result.get('events')}\nstderr: {err[-2000:]}\n{service.tail_log(30)}"
    assert result["ok"], ctx
    seen = [e["what"] for e in result["events"]]
    assert "answered" in seen and seen.index("incoming") < seen.index("established"), ctx
    # The agent's browser showed whom it was about to call (SPEC §3.1).
    assert [e["from"] for e in result["events"] if e["what"] == "incoming"] == ["0215550100"], ctx
    assert "bye-received" not in seen, ctx                # nobody but the agent hung up
    # Audio both ways through ICE + DTLS-SRTP, still flowing at the end.
    assert result["media"]["connectionState"] == "connected", result["media"]
    assert result["mediaLater"]["packetsSent"] > result["media"]["packetsSent"], result
    assert result["mediaLater"]["bytesReceived"] > 0, result
    final = service.wait_state(call_id, "ended", timeout=15)
    assert final["reason"] == "completed" and final["duration_s"] >= TALK_S - 2, final
    # One BYE to the trunk (a retransmission under load is the same request).
    assert len({m.header("CSeq")[0] for m in trunk.received("BYE")}) == 1
