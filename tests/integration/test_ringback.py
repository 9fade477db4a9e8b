"""The agent's ringback of a REST call (SPEC §3.2) against the real Asterisk: heard while
the callee rings, nothing once the callee answered. Read from Asterisk's RTP counters of
the agent phone's channels (``pjsip show channelstats``, packets sent to the phone): the
SIPp peers send no audio, so every packet counted towards an agent is a tone Asterisk
generates (the ringback tone: 50 packets a second)."""

from __future__ import annotations

import re
import time

import pytest

from testbed.sipp import uas_scenario

AGENT_PORT, TRUNK_PORT = 5071, 5070
CALLS = 4


def _sent_to_agent(asterisk) -> dict[str, int]:
    """RTP packets Asterisk sent so far on each channel of agent 1001's phone."""
    sent = {}
    for line in asterisk.cli("pjsip show channelstats").splitlines():
        cols = line.split()
        if len(cols) > 8 and re.fullmatch(r"1001-[0-9a-f]{8}", cols[1]):
            sent[cols[1]] = int(cols[8])
    return sent


def _wait_all_sent(asterisk, timeout: float) -> dict[str, int]:
    """The counters once every agent's channel has been sent a packet (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        sent = _sent_to_agent(asterisk)
        if (len(sent) == CALLS and all(sent.values())) or time.monotonic() > deadline:
            return sent
        time.sleep(0.1)


@pytest.mark.parametrize("bridging", ["stasis", "dialplan"])
def test_the_agent_hears_ringback_while_the_callee_rings_and_nothing_once_connected(asterisk, make_service,
                                                                                     sipp, bridging):
    """Stasis bridging: the service's playback of the agent leg, stopped at the answer.
    Dialplan bridging ([c2d-native-call]): the context's Dial() rings the agent leg and
    stops the tone itself at the answer."""
    # The phone rings a moment before it is picked up (its 180 well ahead of its 200).
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=300))
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=3000, talk_ms=2500))
    service = make_service({"limits": {"max_active_calls_per_agent": CALLS}, "dial": {"bridging": bridging}})
    ids = []
    for n in range(CALLS):
        r = service.post_call({"agent": "1001", "callee": f"021555010{n}", "outbound_id": "0215550199",
                               "call_ref": f"ringback-{n}"})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    # Every callee rings for 3 s: each agent is sent the ringback, and goes on being sent it.
    ringing = _wait_all_sent(asterisk, timeout=2.0)
    assert len(ringing) == CALLS and all(ringing.values()), ringing
    time.sleep(0.5)
    still_ringing = _sent_to_agent(asterisk)
    assert all(still_ringing[chan] >= ringing[chan] + 10 for chan in ringing), (ringing, still_ringing)
    for call_id in ids:
        assert service.wait_state(call_id, "connected")["state"] == "connected"
    time.sleep(0.3)   # the tone's last frames, already on their way at the answer
    connected = _sent_to_agent(asterisk)
    time.sleep(1.5)
    # Nothing more once connected: the ringback used to play on through most calls
    # (50 packets a second each, while the callee sends no audio).
    assert _sent_to_agent(asterisk) == connected, connected
    for call_id in ids:
        final = service.wait_state(call_id, "ended", timeout=20)
        assert (final["reason"], final["ended_by"]) == ("completed", "callee"), final
