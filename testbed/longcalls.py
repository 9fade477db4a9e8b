"""SIPp scenarios of long calls (SPEC §3.9, field report C32): an agent's phone that puts
the customer on hold and takes them back, by re-INVITEs of its own."""

from __future__ import annotations

from testbed.sipp import _BYE_FROM_UAS, _HEAD, _SDP, _resp, invite


# The INVITE a UAS scenario answers, its dialog's headers kept for a BYE of its own.
_RECV_INVITE = ('  <recv request="INVITE" crlf="true" rrs="true">\n'
                '    <action>\n'
                '      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_party"/>\n'
                '      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to_hdr"/>\n'
                '      <ereg regexp=".*" search_in="hdr" header="Call-ID:" assign_to="callid"/>\n'
                '    </action>\n'
                '  </recv>\n')


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
        _RECV_INVITE,
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


def _phase(k: int, wait_ms: int, after: str) -> str:
    """Phase ``k`` of a talking phone: answer the peer's re-INVITEs/UPDATEs, and go to
    ``after`` once ``wait_ms`` passed without any (a BYE from the peer ends the call)."""
    return (f'  <label id="talk{k}"/>\n'
            f'  <recv request="INVITE" optional="true" next="reinvite{k}" timeout="{wait_ms}" ontimeout="{after}"/>\n'
            f'  <recv request="UPDATE" optional="true" next="update{k}"/>\n'
            '  <recv request="BYE" next="bye_received"/>\n'
            f'  <label id="reinvite{k}"/>\n'
            + _resp(200, "OK", sdp=True, to_tag=False) +
            f'  <recv request="ACK" next="talk{k}"/>\n'
            f'  <label id="update{k}"/>\n'
            + _resp(200, "OK", to_tag=False).replace("<send>", f'<send next="talk{k}">'))


def refreshing_uac_scenario(*, target: str, from_user: str, headers: list[str], session_expires: int,
                            refresh_ms: int, refreshes: int, tail_ms: int) -> str:
    """A phone that calls ``target`` with ``Session-Expires: {session_expires}`` and no
    ``refresher`` (field report C34), then refreshes the session itself, as the
    refresher named in the answer would: an UPDATE with
    ``Session-Expires: …;refresher=uac`` each ``refresh_ms`` (``refreshes`` times),
    then talks ``tail_ms`` more and hangs up. Requests of the peer in the dialog
    get 200; a BYE from the peer is answered and ends the scenario early."""
    def request(method: str, cseq: int, headers: str = "", retrans: bool = True) -> str:
        return f"""  <send{' retrans="500"' if retrans else ''}><![CDATA[
{method} [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{from_user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [$peer_to]
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: <sip:{from_user}@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
{headers}Content-Length: 0

]]></send>
"""

    x = [_HEAD, '<scenario name="c2d-refreshing-phone">\n',
         invite(target, from_user, ["Supported: timer", f"Session-Expires: {session_expires}", *headers]),
         """  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"><action>
    <ereg regexp=".*" search_in="hdr" header="To:" assign_to="peer_to"/>
  </action></recv>
""", request("ACK", 1, retrans=False)]
    for k in range(1, refreshes + 1):
        x.append(_phase(k, refresh_ms, f"refresh{k}"))
        x.append(f'  <label id="refresh{k}"/>\n')
        x.append(request("UPDATE", k + 1, f"Supported: timer\nSession-Expires: {session_expires};refresher=uac\n"))
        x.append(f'  <recv response="200" next="talk{k + 1}"/>\n')
    x.append(_phase(refreshes + 1, tail_ms, "hangup"))
    x.append('  <label id="hangup"/>\n')
    x.append(request("BYE", refreshes + 2))
    x.append("""  <recv response="200" next="end"/>
  <label id="bye_received"/>
""" + _resp(200, "OK", to_tag=False) + """  <label id="end"/>
  <timewait milliseconds="200"/>
</scenario>
""")
    return "".join(x)


_SDP_PCMA = _SDP.replace("RTP/AVP 0 101", "RTP/AVP 8 101").replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000")
_PCAP_PCMA = "/usr/share/sip-tester/g711a.pcap"    # SIPp's sample: about 6.8 s of PCMA
PCAP_PCMA_S = 6.8


def late_rtp_uas_scenario(*, ring_ms: int, rtp_after_ms: int, talk_ms: int) -> str:
    """A callee (UAS, PCMA) that rings ``ring_ms``, answers, stays silent for
    ``rtp_after_ms`` (no RTP at all), then sends SIPp's PCMA sample (about
    :data:`PCAP_PCMA_S` s of RTP) and hangs up (BYE) ``talk_ms`` after the answer
    (field report C32). Requests in the dialog get 200."""
    answer = _resp(200, "OK", sdp=True).replace(_SDP, _SDP_PCMA)
    return "".join([
        _HEAD, '<scenario name="c2d-late-rtp">\n',
        _RECV_INVITE,
        _resp(100, "Trying", to_tag=False), _resp(180, "Ringing"),
        f'  <pause milliseconds="{ring_ms}"/>\n',
        answer,
        '  <recv request="ACK" crlf="true"><action>\n'
        '    <assignstr assign_to="local_party" value="[$to_hdr];tag=[pid]SIPpTag01[call_number]"/>\n'
        '  </action></recv>\n',
        _phase(1, rtp_after_ms, "rtp"),
        '  <label id="rtp"/>\n'
        f'  <nop><action><exec play_pcap_audio="{_PCAP_PCMA}"/></action></nop>\n',
        _phase(2, talk_ms - rtp_after_ms, "hangup"),
        '  <label id="hangup"/>\n',
        _BYE_FROM_UAS,
        '  <nop next="end"/>\n'
        '  <label id="bye_received"/>\n',
        _resp(200, "OK", to_tag=False),
        '  <label id="end"/>\n  <timewait milliseconds="200"/>\n</scenario>\n',
    ])
