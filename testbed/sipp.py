"""SIPp peers for the bench: the PSTN trunk, agents' phones and browser stand-ins.

Each peer is one ``sipp`` process inside the bench root, bound to 127.0.0.1 on
its own port, running a scenario rendered from a template here (ring time,
answer or reject, who hangs up and when). Every SIP message the peer sends or
receives goes to its message log (``-trace_msg``); ``SippPeer.messages()``
parses it (``testbed/sipmessages.py``) so a test can assert what the trunk
really received.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from testbed.sipmessages import SipMessage, parse_messages

_SDP = """v=0
o=sipp 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
"""

_HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<!DOCTYPE scenario SYSTEM "sipp.dtd">\n'


def _resp(code: int, reason: str, sdp: bool = False, to_tag: bool = True) -> str:
    body = _SDP if sdp else ""
    ctype = "Content-Type: application/sdp\n" if sdp else ""
    tag = ";tag=[pid]SIPpTag01[call_number]" if to_tag else ""
    return f"""  <send><![CDATA[
SIP/2.0 {code} {reason}
[last_Via:]
[last_From:]
[last_To:]{tag}
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
{ctype}Content-Length: [len]

{body}]]></send>
"""


_BYE_FROM_UAS = """  <send><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [$local_party]
To: [$remote_party]
Call-ID: [$callid]
CSeq: 9001 BYE
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
"""

# Requests inside an established dialog (re-INVITE, UPDATE: direct media,
# connected line, session timers) are answered 200, as often as they come.
# Each step names the next one itself (``next=``): a request that arrives
# between two steps must find the scenario waiting at "talk", never at a
# <nop>, or SIPp matches it against the first INVITE and answers it again.
_IN_DIALOG = """  <label id="reinvite"/>
""" + _resp(200, "OK", sdp=True, to_tag=False) + """  <recv request="ACK" next="talk"/>
  <label id="update"/>
""" + _resp(200, "OK", to_tag=False).replace("<send>", '<send next="talk">') + """  <nop next="talk"/>
"""


def _talk(bye_timeout: str, bye_next: str = "") -> str:
    """The established dialog: answer re-INVITEs and UPDATEs until a BYE.

    ``bye_timeout``: a ``timeout=... ontimeout=...`` attribute string (SIPp
    takes a run of optional receives' timeout from the first of them).
    """
    nxt = f' next="{bye_next}"' if bye_next else ""
    return ('  <label id="talk"/>\n'
            f'  <recv request="INVITE" optional="true" next="reinvite"{bye_timeout}/>\n'
            '  <recv request="UPDATE" optional="true" next="update"/>\n'
            f'  <recv request="BYE"{nxt}/>\n')


def uas_scenario(*, ring_ms: int = 0, answer: bool = True, reject_code: int | None = None,
                 talk_ms: int | None = None, dtmf: str | None = None, early_media: bool = False,
                 reason: str | None = None) -> str:
    """Render a UAS scenario (one incoming call).

    ``ring_ms``: milliseconds between 180 Ringing and the final answer; a CANCEL
    in that time is answered 200 + 487. ``answer=False`` with no
    ``reject_code``: ring for ever (until CANCEL). ``reject_code``: final error
    response (486, 480, 603, ...). ``talk_ms``: after the 200 OK, send BYE
    after that many milliseconds unless the other side hangs up first;
    ``None`` waits for the BYE. Re-INVITEs and UPDATEs in the dialog get 200.
    ``dtmf``: a digit sent (RFC 4733, from SIPp's pcap files) 500 ms after
    the answer. ``early_media``: 183 Session Progress with SDP instead of
    180 Ringing (a network that plays its own ringback). ``reason``: the reason
    phrase of ``reject_code``'s response (default: the usual one).
    """
    x = [_HEAD, '<scenario name="c2d-uas">\n']
    answering = answer and reject_code is None
    # SIPp refuses variables that are set but never used: only an answering
    # scenario (which may send BYE) captures the dialog headers.
    x.append('  <recv request="INVITE" crlf="true" rrs="true">\n' + ('' if not answering else
             '    <action>\n'
             '      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_party"/>\n'
             '      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to_hdr"/>\n'
             '      <ereg regexp=".*" search_in="hdr" header="Call-ID:" assign_to="callid"/>\n'
             '    </action>\n') + '  </recv>\n')
    x.append(_resp(100, "Trying", to_tag=False))
    x.append(_resp(183, "Session Progress", sdp=True) if early_media else _resp(180, "Ringing"))
    if ring_ms > 0 or not answer:
        timeout = f' timeout="{ring_ms}" ontimeout="final"' if (answer or reject_code) and ring_ms > 0 else ""
        x.append(f'  <recv request="CANCEL"{timeout}/>\n')
        x.append(_resp(200, "OK", to_tag=False))
        x.append(_resp(487, "Request Terminated"))
        x.append('  <recv request="ACK" next="end"/>\n')
    x.append('  <label id="final"/>\n')
    if reject_code is not None:
        reasons = {486: "Busy Here", 480: "Temporarily Unavailable", 603: "Decline",
                   404: "Not Found", 503: "Service Unavailable", 408: "Request Timeout"}
        x.append(_resp(reject_code, reason or reasons.get(reject_code, "Error")))
        x.append('  <recv request="ACK" next="end"/>\n')
    elif answer:
        x.append(_resp(200, "OK", sdp=True))
        x.append('  <recv request="ACK" crlf="true"><action>\n'
                 '    <assignstr assign_to="local_party" value="[$to_hdr];tag=[pid]SIPpTag01[call_number]"/>\n'
                 '  </action></recv>\n')
        # SIPp takes the receive timeout from the first of a run of optional
        # receives, so the talk timer sits on the first one.
        bye_timeout = f' timeout="{talk_ms}" ontimeout="hangup"' if talk_ms else ""
        if dtmf:
            name = {"*": "star", "#": "pound"}.get(dtmf, dtmf)
            x.append('  <pause milliseconds="500"/>\n'
                     f'  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_{name}.pcap"/>'
                     '</action></nop>\n')
        x.append(_talk(bye_timeout))
        x.append(_resp(200, "OK", to_tag=False))
        x.append('  <nop next="end"/>\n')
        x.append('  <label id="hangup"/>\n')
        x.append(_BYE_FROM_UAS)
        x.append('  <nop next="end"/>\n')
        x.append(_IN_DIALOG)
    x.append('  <label id="end"/>\n')
    x.append('  <timewait milliseconds="200"/>\n')
    x.append('</scenario>\n')
    return "".join(x)


def invite(target: str, from_user: str, headers: list[str]) -> str:
    """The ``<send>`` of a phone's INVITE to ``target`` with extra ``headers`` ("Name: value")."""
    extra = "".join(h + "\n" for h in headers)
    return f"""  <send retrans="500"><![CDATA[
INVITE sip:{target}@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{from_user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{target}@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:{from_user}@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
{extra}Content-Type: application/sdp
Content-Length: [len]

{_SDP}]]></send>
"""


def uac_scenario(*, target: str, from_user: str, headers: list[str] | None = None,
                 talk_ms: int | None = 1000, cancel_after_ms: int | None = None,
                 wait_bye: bool = False) -> str:
    """Render a UAC scenario: one INVITE with extra ``headers`` (``"Name: value"``).

    ``target``: the Request-URI user (the callee). Ends on any final response
    (recorded) — a 2xx is ACKed, then BYE after ``talk_ms`` ms, or (``wait_bye``)
    the peer's BYE is awaited. ``cancel_after_ms``: CANCEL after that long
    instead of waiting for the answer.
    """
    x = [_HEAD, '<scenario name="c2d-uac">\n', invite(target, from_user, headers or [])]
    x.append('  <recv response="100" optional="true"/>\n')
    if cancel_after_ms is not None:
        x.append('  <recv response="180"/>\n')
        x.append(f'  <pause milliseconds="{cancel_after_ms}"/>\n')
        x.append("""  <send><![CDATA[
CANCEL sip:""" + target + """@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: <sip:""" + from_user + """@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:""" + target + """@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 CANCEL
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
  <recv response="487"/>
""")
        x.append(_ack(target, from_user))
        x.append('  <nop next="end"/>\n')
    x.append('  <recv response="180" optional="true"/>\n  <recv response="183" optional="true"/>\n')
    # Any final non-2xx: ACK and end (the test reads the code from the log).
    for code in (403, 404, 408, 480, 484, 486, 487, 488, 500, 503, 603):
        x.append(f'  <recv response="{code}" optional="true" next="ack_error"/>\n')
    # The peer's To (with its tag) is kept: after a re-INVITE from the peer,
    # [last_To:] would name this phone instead.
    x.append('  <recv response="200" rrs="true"><action>\n'
             '    <ereg regexp=".*" search_in="hdr" header="To:" assign_to="peer_to"/>\n'
             '  </action></recv>\n')
    x.append(f"""  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{from_user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [$peer_to]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:{from_user}@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Length: 0

]]></send>
""")
    if wait_bye:
        x.append(_talk("") + _resp(200, "OK", to_tag=False) + '  <nop next="end"/>\n')
    else:
        x.append(_talk(f' timeout="{talk_ms or 1}" ontimeout="send_bye"', "bye_received"))
        x.append('  <label id="send_bye"/>\n')
        x.append(f"""  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{from_user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [$peer_to]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:{from_user}@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
  <nop next="end"/>
  <label id="bye_received"/>
""" + _resp(200, "OK", to_tag=False) + '  <nop next="end"/>\n')
    x.append(_IN_DIALOG)
    x.append('  <label id="ack_error"/>\n')
    x.append(_ack(target, from_user))
    x.append('  <label id="end"/>\n  <timewait milliseconds="200"/>\n</scenario>\n')
    return "".join(x)


def _ack(target: str, from_user: str) -> str:
    return f"""  <send><![CDATA[
ACK sip:{target}@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: <sip:{from_user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
"""


class SippPeer:
    """One SIPp process in the bench root.

    ``name``: a label for its files. ``port``: its UDP port on 127.0.0.1.
    ``scenario``: the XML text. ``uac_target``: for a UAC, ``host:port`` to
    call (Asterisk, 127.0.0.1:5060); its ``calls`` calls are placed at
    ``rate`` calls per second. Raises ``RuntimeError`` if SIPp dies at start.
    """

    def __init__(self, root: Path, name: str, port: int, scenario: str, *,
                 uac_target: str | None = None, calls: int | None = None,
                 rate: float | None = None, max_simultaneous: int = 10000,
                 extra_args: list[str] | None = None, host: str = "127.0.0.1"):
        self.root, self.name, self.port, self.host = Path(root), name, port, host
        self.rel = Path("tmp/c2d-bench") / f"{name}-{port}-{os.getpid()}-{time.monotonic_ns()}"
        self.dir = self.root / self.rel
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "scenario.xml").write_text(scenario)
        args = ["chroot", str(self.root), "sipp", "-sf", f"/{self.rel}/scenario.xml",
                "-i", host, "-p", str(port), "-nostdin",
                "-trace_msg", "-message_file", f"/{self.rel}/messages.log",
                "-trace_err", "-error_file", f"/{self.rel}/errors.log",
                "-trace_stat", "-stf", f"/{self.rel}/stat.csv",
                "-l", str(max_simultaneous), "-max_recv_loops", "10000", "-timeout_error"]
        if uac_target:
            args += ["-m", str(calls or 1), uac_target]
            if rate:
                args += ["-r", str(rate)]
        args += extra_args or []
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=open(self.dir / "stdout.log", "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        time.sleep(0.15)
        if self.proc.poll() not in (None, 0):
            raise RuntimeError(f"sipp {name} exited {self.proc.returncode}: "
                               + (self.dir / "stdout.log").read_text(errors="replace")[-2000:])

    def wait(self, timeout: float = 30) -> int:
        """Wait for a UAC to finish; return SIPp's exit code (0 = every call succeeded)."""
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """Stop the peer (idempotent)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGUSR1)  # SIPp: dump and quit
                self.proc.wait(timeout=3)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)

    def messages(self) -> list[SipMessage]:
        """Every SIP message logged so far, in order."""
        path = self.dir / "messages.log"
        if not path.exists():
            return []
        return parse_messages(path.read_text(errors="replace"))

    def received(self, method: str | None = None) -> list[SipMessage]:
        """Messages this peer received; only requests of ``method`` when given."""
        return [m for m in self.messages() if m.direction == "received"
                and (method is None or m.method == method)]

    def initial_invites(self) -> list[SipMessage]:
        """INVITEs this peer received that opened a dialog (no To tag): re-INVITEs left out."""
        return [m for m in self.received("INVITE")
                if ";tag=" not in (m.header("To") or m.header("t") or [""])[0]]

    def sent(self) -> list[SipMessage]:
        """Messages this peer sent."""
        return [m for m in self.messages() if m.direction == "sent"]

    def wait_for(self, predicate, timeout: float = 10.0) -> list[SipMessage]:
        """Wait until some message satisfies ``predicate``; return all that do."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.messages() if predicate(m)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


def outlast_invite_retransmissions(sipp, port: int, first_sent_at: float) -> None:
    """Answer on ``port`` (a peer's port where nothing answered an INVITE) until
    Asterisk's INVITE transaction has timed out (Timer B, 32 s after
    ``first_sent_at``, a ``time.monotonic()`` value): without a provisional
    answer there is nothing to CANCEL, and Asterisk sends the INVITE again,
    also after the call ended. So no later test's peer on that port gets it.
    ``sipp``: the test's SIPp factory fixture. Raises AssertionError when no
    retransmission comes within 40 s."""
    late = sipp("late", port, uas_scenario(reject_code=408))
    assert late.wait_for(lambda m: m.direction == "received" and m.method == "INVITE", timeout=40)
    time.sleep(max(0.0, first_sent_at + 33 - time.monotonic()))
