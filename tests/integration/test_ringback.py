"""The agent's ringback of a REST call (SPEC §3.2) against the real Asterisk: heard while
the callee rings, silent once the callee answered. Read from Asterisk's RTP counters of
the agent phone's channel (``pjsip show channelstats``); the SIPp peers send no audio,
so every packet counted towards the agent is a tone Asterisk generates."""

from __future__ import annotations

import re
import time

from testbed.sipp import uas_scenario

AGENT_PORT, TRUNK_PORT = 5071, 5070
CALLS = 5


def _agent_packets_sent(asterisk) -> dict[str, int]:
    """RTP packets Asterisk sent so far on each channel of agent 1001's phone."""
    out = asterisk.cli("pjsip show channelstats")
    sent = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) > 8 and re.fullmatch(r"1001-[0-9a-f]{8}", cols[1]):
            sent[cols[1]] = int(cols[8])
    return sent


def test_the_agent_hears_ringback_while_the_callee_rings_and_none_once_connected(asterisk, make_service, sipp):
    sipp("agent", AGENT_PORT, uas_scenario())
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=3000, talk_ms=4000))
    service = make_service({"limits": {"max_active_calls_per_agent": CALLS}})
    ids = []
    for n in range(CALLS):
        r = service.post_call({"agent": "1001", "callee": f"021555010{n}", "outbound_id": "0215550199",
                               "call_ref": f"ringback-{n}"})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    # Every callee rings for 3 s: each agent hears the ringback.
    deadline = time.monotonic() + 2.5
    while True:
        ringing = _agent_packets_sent(asterisk)
        if (len(ringing) == CALLS and all(n > 0 for n in ringing.values())) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(ringing) == CALLS and all(n > 0 for n in ringing.values()), ringing
    for call_id in ids:
        assert service.wait_state(call_id, "connected")["state"] == "connected"
    time.sleep(0.5)
    connected = _agent_packets_sent(asterisk)
    time.sleep(2)
    later = _agent_packets_sent(asterisk)
    # No tone once connected: Asterisk sends the agents nothing more (the ringback
    # used to play on through most calls, 50 packets a second each).
    assert later == connected, (connected, later)
    for call_id in ids:
        final = service.wait_state(call_id, "ended", timeout=20)
        assert (final["reason"], final["ended_by"]) == ("completed", "callee"), final
