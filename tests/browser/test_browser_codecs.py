"""A browser that offers only Opus, bridged to a trunk that takes only G.711 µ-law (field
report C33), in headless Chromium with SIP.js 0.21, against the real Asterisk.

RTP is counted at both ends while the call is up: the browser's own counters
(``getStats``: Opus packets sent, packets received) and, for each leg, Asterisk's
(``GET /channels/{id}/rtp_statistics``). The trunk (SIPp with ``-rtp_echo``) sends
back every PCMU packet it receives, so the trunk leg's received count is what
reached the trunk peer. Both legs carrying RTP both ways, in two codecs, is
Asterisk translating Opus ↔ PCMU (``codec_opus_open_source``; ``check`` fails
where it is missing, tests/integration/test_long_calls.py).
"""

from __future__ import annotations

import threading
import time

import pytest

from testbed.sipp import uas_scenario
from tests.browser.test_browser_call import (
    TRUNK_PORT,
    run_browser,
    sent_request,
)

pytestmark = pytest.mark.browser


def _audio_codecs(sdp_message: str) -> list[str]:
    """The payload types of the m=audio line of a SIP message's SDP."""
    line = next(x for x in sdp_message.replace("\r\n", "\n").split("\n") if x.startswith("m=audio "))
    return line.split()[3:]


def _rtp_counts_while_up(asterisk, browser: threading.Thread, seconds: float = 90) -> dict[str, dict]:
    """Once both legs are up for 3 s: each channel's RTP counters, by channel name
    ({} when the ``browser`` thread ended, or ``seconds`` passed, before that).
    Chromium alone may take 20 s to start and call on a loaded machine."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and browser.is_alive():
        # the browser's and the trunk's channels (not the Local channel between, ADR 0014)
        chans = [c for c in asterisk.channels() if c["name"].startswith("PJSIP/")]
        if len(chans) == 2 and all(c["state"] == "Up" for c in chans):
            time.sleep(3)
            out = {}
            for c in chans:
                r = asterisk.ari.get(f"/channels/{c['id']}/rtp_statistics")
                out[c["name"]] = r.json() if r.status_code == 200 else {}
            return out
        time.sleep(0.25)
    return {}


def test_opus_only_browser_and_pcmu_only_trunk_carry_rtp_both_ways(asterisk, service, sipp):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200), extra_args=["-rtp_echo"])
    result: dict = {}
    browser = threading.Thread(target=lambda: result.update(run_browser(
        asterisk, service, onlyCodecName="opus", callRef="opus-1", hangupAfterMs=7000)))
    browser.start()
    counts = _rtp_counts_while_up(asterisk, browser)
    browser.join(timeout=120)
    ctx = result.get("_context", "")
    assert result.get("ok"), f"{result.get('error')}\n{result.get('events')}\n{ctx}"
    invite = sent_request(result, "INVITE")[-1]
    assert "opus/48000" in invite and len(_audio_codecs(invite)) == 1, invite
    trunk_invite = trunk.received("INVITE")[0].text
    assert "opus" not in trunk_invite.lower()
    answer = next(m for m in trunk.sent() if m.status == 200 and "m=audio" in m.text)
    assert _audio_codecs(answer.text)[0] == "0"          # PCMU on the trunk
    media = result["media"]
    assert media["codec"] == "audio/opus" and media["packetsSent"] > 100 and media["bytesReceived"] > 0, media
    legs = {name.split("/")[1].split("-")[0]: c for name, c in counts.items()}
    assert set(legs) == {"2101", "trunk"}, counts
    for name, c in legs.items():
        assert c.get("rxcount", 0) > 50 and c.get("txcount", 0) > 50, (name, c)
