"""SIPp scenarios of long calls (SPEC §3.9, field report C32): an agent's phone that puts
the customer on hold and takes them back, by re-INVITEs of its own."""

from __future__ import annotations

from tests.bench.sipp import _BYE_FROM_UAS, _HEAD, _SDP, _resp


def _reinvite(cseq: int, direction: str) -> str:
    sdp = _SDP.replace("o=sipp 1 1", f"o=sipp 1 {cseq}") + f"a={direction}\n"
    return f"""  <send retrans="500"><![CDATA[
INVITE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [$local_party]
To: [$remote_party]
Call-ID: [$callid]
CSeq: {cseq} INVITE
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{sdp}]]></send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [$local_party]
To: [$remote_party]
Call-ID: [$callid]
CSeq: {cseq} ACK
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Length: 0

]]></send>
"""


def hold_uas_scenario(*, talk_ms: int, hold_ms: int, inactive_ms: int, after_ms: int) -> str:
    """An agent's phone (UAS) that answers, talks ``talk_ms``, holds (``a=sendonly``) for
    ``hold_ms``, goes ``a=inactive`` for ``inactive_ms``, takes the call back
    (``a=sendrecv``), talks ``after_ms`` more and hangs up (BYE)."""
    return "".join([
        _HEAD, '<scenario name="c2d-hold">\n',
        '  <recv request="INVITE" crlf="true" rrs="true">\n'
        '    <action>\n'
        '      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_party"/>\n'
        '      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to_hdr"/>\n'
        '      <ereg regexp=".*" search_in="hdr" header="Call-ID:" assign_to="callid"/>\n'
        '    </action>\n'
        '  </recv>\n',
        _resp(100, "Trying", to_tag=False), _resp(180, "Ringing"), _resp(200, "OK", sdp=True),
        '  <recv request="ACK" crlf="true"/>\n',
        '  <nop><action>\n'
        '    <assignstr assign_to="local_party" value="[$to_hdr];tag=[pid]SIPpTag01[call_number]"/>\n'
        '  </action></nop>\n',
        f'  <pause milliseconds="{talk_ms}"/>\n',
        _reinvite(8001, "sendonly"), f'  <pause milliseconds="{hold_ms}"/>\n',
        _reinvite(8002, "inactive"), f'  <pause milliseconds="{inactive_ms}"/>\n',
        _reinvite(8003, "sendrecv"), f'  <pause milliseconds="{after_ms}"/>\n',
        _BYE_FROM_UAS,
        '  <timewait milliseconds="200"/>\n</scenario>\n',
    ])
