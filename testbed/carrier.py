"""A SIPp trunk that behaves like a carrier with a call-rate limit (field report C38).

The carrier accepts at most ``limit`` INVITEs in any ``window_ms``
(a sliding window, as carriers count calls per second) and answers any
other with ``503 Service Unavailable`` and a ``Retry-After`` header; the
others ring briefly, are answered and hung up by the carrier after
``talk_ms``. SIPp keeps the times of the last ``limit`` accepted INVITEs
in global variables, so the refusals are the carrier's, not the test's.
"""

from __future__ import annotations

from testbed.sipp import _BYE_FROM_UAS, _HEAD, _IN_DIALOG, _resp


def carrier_scenario(*, limit: int, window_ms: int, retry_after_s: int = 10, talk_ms: int = 800,
                     ring_ms: int = 100) -> str:
    """Render the rate-limited carrier's UAS scenario (one INVITE per SIPp call)."""
    slots = [f"t{i}" for i in range(limit)]          # t0: the oldest accepted INVITE
    shift = "".join(f'    <assign assign_to="{a}" variable="{b}"/>\n' for a, b in zip(slots, slots[1:]))
    refuse = f"""  <label id="refuse"/>
  <send><![CDATA[
SIP/2.0 503 Service Unavailable
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Retry-After: {retry_after_s}
Content-Length: 0

]]></send>
  <recv request="ACK" next="end"/>
"""
    return "".join([
        _HEAD, '<scenario name="c2d-carrier">\n', f'  <Global variables="{",".join(slots)}"/>\n',
        '  <recv request="INVITE" crlf="true" rrs="true">\n'
        '    <action>\n'
        '      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_party"/>\n'
        '      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to_hdr"/>\n'
        '      <ereg regexp=".*" search_in="hdr" header="Call-ID:" assign_to="callid"/>\n'
        '      <gettimeofday assign_to="sec,usec"/>\n'
        '    </action>\n'
        '  </recv>\n',
        '  <nop><action>\n'
        '    <assign assign_to="now" variable="usec"/>\n'
        '    <divide assign_to="now" value="1000"/>\n'
        '    <multiply assign_to="sec" value="1000"/>\n'
        '    <add assign_to="now" variable="sec"/>\n'
        '    <assign assign_to="gap" variable="now"/>\n'
        '    <subtract assign_to="gap" variable="t0"/>\n'
        f'    <test assign_to="too_soon" variable="gap" compare="less_than" value="{window_ms}"/>\n'
        '  </action></nop>\n',
        '  <nop test="too_soon" next="refuse"/>\n',
        '  <nop><action>\n' + shift + f'    <assign assign_to="{slots[-1]}" variable="now"/>\n  </action></nop>\n',
        _resp(100, "Trying", to_tag=False),
        _resp(180, "Ringing"),
        f'  <pause milliseconds="{ring_ms}"/>\n',
        _resp(200, "OK", sdp=True),
        '  <recv request="ACK" crlf="true"/>\n',
        '  <nop><action>\n'
        '    <assignstr assign_to="local_party" value="[$to_hdr];tag=[pid]SIPpTag01[call_number]"/>\n'
        '  </action></nop>\n',
        '  <label id="talk"/>\n',
        f'  <recv request="INVITE" optional="true" next="reinvite" timeout="{talk_ms}" ontimeout="hangup"/>\n',
        '  <recv request="UPDATE" optional="true" next="update"/>\n',
        '  <recv request="BYE"/>\n',
        _resp(200, "OK", to_tag=False),
        '  <nop next="end"/>\n',
        '  <label id="hangup"/>\n',
        _BYE_FROM_UAS,
        '  <nop next="end"/>\n',
        _IN_DIALOG,
        refuse,
        '  <label id="end"/>\n  <timewait milliseconds="200"/>\n</scenario>\n',
    ])
