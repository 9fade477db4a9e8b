"""The carrier's ``Retry-After``, read from Asterisk's own SIP capture (SPEC §3.8, C38).

A carrier that refuses an INVITE with ``503`` says in ``Retry-After`` how
long to keep away. Asterisk passes none of that response's headers on:
ARI's ``ChannelDestroyed`` carries the cause and ``tech_cause`` (the SIP
code) only; chan_pjsip's ``chan_pjsip_incoming_response_update_cause``
keeps the status line alone (``HANGUPCAUSE`` = ``SIP 503 Service
Unavailable``); ``PJSIP_RESPONSE_HEADER`` (res_pjsip_header_funcs.c,
``incoming_response``) stores the headers of a ``200`` only; AMI's hangup
events carry the cause too. The one place where Asterisk hands out the
whole refused response is its HEP capture: ``res_hep_pjsip`` sends every
SIP message it sends or receives, as HEPv3 over UDP, to ``hep.conf``'s
``capture_address``.

So, when ``[trunk] hep_listen`` is set, the service listens there
(:func:`listen`), keeps the ``Retry-After`` of every ``503`` to an INVITE
for a short while, by the number the INVITE was sent to (the To URI's
user part, :class:`RetryAfterLog`), and the pacer holds the trunk for that
long when the leg to that number ends refused with 503. Without a capture
(HEP off, or a 503 without ``Retry-After``) the hold is ``[trunk]
hold_after_503_s``.

HEP carries no authentication, so the listener takes datagrams only from
the addresses it is given (loopback and the Asterisk host of ``[ari] url``,
:func:`listen`) and drops the rest; it should bind loopback (Asterisk on
the same host). Even a forged capture only lengthens the hold after a real
refusal of that number, and never past :data:`MAX_RETRY_AFTER_S`.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import re
import socket
import struct
import time
import urllib.parse
import zlib
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 3600.0   # a carrier asking for longer is held for an hour
KEEP_S = 30.0                # how long a refusal waits for its leg's hangup report
MAX_KEPT = 1000              # refusals kept at most (oldest dropped first)
#: The largest captured message inflated: a SIP message over UDP fits in one datagram. A
#: zipped chunk of 64 KiB could otherwise inflate to some 64 MiB, on the event loop.
MAX_MESSAGE = 65535

_PAYLOAD, _PAYLOAD_ZIP = 0x000F, 0x0010
_STATUS_503 = re.compile(rb"\ASIP/2\.0 503 ")
_HEADER = re.compile(rb"^([A-Za-z-]+)[ \t]*:[ \t]*(.*?)\r?$", re.M)
_TO_USER = re.compile(rb"sips?:([^@;>\s]+)@", re.I)


def hep3_payload(packet: bytes) -> bytes | None:
    """The captured message of one HEPv3 packet (chunk 0x000F, or 0x0010 inflated).

    Returns None when ``packet`` is not HEPv3 or carries no payload, or a
    zipped payload inflates to more than :data:`MAX_MESSAGE` bytes (no SIP
    message is that long; inflating is stopped there); never raises on
    malformed input (a truncated chunk ends the walk)."""
    if len(packet) < 6 or packet[:4] != b"HEP3":
        return None
    total = min(struct.unpack_from("!H", packet, 4)[0], len(packet))
    at = 6
    while at + 6 <= total:
        _vendor, kind, length = struct.unpack_from("!HHH", packet, at)
        if length < 6 or at + length > total:
            return None
        body = packet[at + 6:at + length]
        if kind == _PAYLOAD:
            return body
        if kind == _PAYLOAD_ZIP:
            inflate = zlib.decompressobj()
            try:
                message = inflate.decompress(body, MAX_MESSAGE)
            except zlib.error:
                return None
            return message if inflate.eof else None
        at += length
    return None


def refusal(sip: bytes) -> tuple[str, float | None] | None:
    """``(number, retry_after_s)`` when ``sip`` is a ``503`` response to an INVITE.

    ``number``: the To URI's user part (the number the INVITE went to);
    ``retry_after_s``: the ``Retry-After`` seconds (RFC 3261 §20.33; a
    comment and ``;duration`` are ignored), capped at
    :data:`MAX_RETRY_AFTER_S`, or None when absent or not a number.
    Anything else (a request, another status, a 503 to another method):
    None."""
    if not _STATUS_503.match(sip):
        return None
    head = sip.split(b"\r\n\r\n", 1)[0]
    headers: dict[bytes, bytes] = {}
    for name, value in _HEADER.findall(head):
        name = name.lower()
        name = {b"t": b"to"}.get(name, name)   # RFC 3261 compact form
        headers.setdefault(name, value)
    if headers.get(b"cseq", b"").split()[-1:] != [b"INVITE"]:
        return None
    to = _TO_USER.search(headers.get(b"to", b""))
    if not to:
        return None
    seconds = None
    m = re.match(rb"\s*(\d{1,10})", headers.get(b"retry-after", b""))
    if m:
        seconds = min(float(m[1]), MAX_RETRY_AFTER_S)
    return to[1].decode("ascii", "replace"), seconds


class RetryAfterLog:
    """The carrier's recent 503 refusals, by the number refused.

    ``keep_s``: seconds a refusal is kept for its leg's hangup report;
    ``clock``: monotonic seconds (tests pass their own). Runs on the
    telephony loop only (docs/decisions/0002): no locks."""

    def __init__(self, keep_s: float = KEEP_S, clock: Callable[[], float] = time.monotonic):
        self.keep_s = keep_s
        self.clock = clock
        self._seen: collections.OrderedDict[str, tuple[float, float | None]] = collections.OrderedDict()
        #: Asked first with each refusal; True when it dealt with it (a capture
        #: that came after the leg's hangup report, see TrunkPacer.use_capture).
        self.late: Callable[[str, float | None], bool] | None = None

    def note(self, number: str, retry_after_s: float | None) -> None:
        """Asterisk received a 503 to an INVITE to ``number``, with this Retry-After (or None)."""
        if self.late is not None and self.late(number, retry_after_s):
            return
        self._seen.pop(number, None)
        self._seen[number] = (self.clock(), retry_after_s)
        while len(self._seen) > MAX_KEPT:
            self._seen.popitem(last=False)

    def take(self, number: str) -> tuple[bool, float | None]:
        """``(seen, retry_after_s)`` of the latest 503 to ``number`` within ``keep_s``, once:
        ``(False, None)`` when the capture has not reported one (yet)."""
        seen = self._seen.pop(number, None)
        if seen is None or self.clock() - seen[0] > self.keep_s:
            return False, None
        return True, seen[1]


class _Capture(asyncio.DatagramProtocol):
    def __init__(self, refusals: RetryAfterLog, senders: frozenset[str] | None):
        self.refusals = refusals
        self.senders = senders
        self.dropped = 0

    def datagram_received(self, data: bytes, addr) -> None:
        if self.senders is not None and not _allowed(addr[0], self.senders):
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("HEP capture: dropped %d datagram(s) from addresses other than Asterisk's "
                            "(the last from %s)", self.dropped, addr[0])
            return
        payload = hep3_payload(data)
        found = refusal(payload) if payload else None
        if found is not None:
            self.refusals.note(*found)
            log.info("carrier refused an INVITE to %s with 503, Retry-After %s", found[0],
                     "absent" if found[1] is None else f"{found[1]:g} s")


def _allowed(address: str, senders: frozenset[str]) -> bool:
    """True when ``address`` (a datagram's source IP) is loopback or one of ``senders``."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if getattr(ip, "ipv4_mapped", None) is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or str(ip) in senders


def asterisk_addresses(ari_url: str) -> frozenset[str]:
    """The IP addresses of the Asterisk host named in ``ari_url`` (``[ari] url``).

    A host name is resolved once, at start; an unresolvable name gives an
    empty set (only loopback is then taken). Never raises."""
    host = urllib.parse.urlsplit(ari_url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return frozenset()
    return frozenset(str(ipaddress.ip_address(info[4][0].split("%", 1)[0])) for info in infos)


async def listen(host: str, port: int, refusals: RetryAfterLog,
                 senders: frozenset[str] | None = frozenset()) -> asyncio.DatagramTransport:
    """Receive Asterisk's HEPv3 capture on UDP ``host``:``port`` into ``refusals``.

    ``senders``: the source addresses taken besides loopback (the Asterisk
    host, :func:`asterisk_addresses`); datagrams from anywhere else are
    dropped and counted in a warning (HEP is unauthenticated). ``None``
    takes every source (tests only). Must run on the telephony loop; close
    the returned transport to stop. Raises OSError when the address cannot
    be bound."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Capture(refusals, senders),
                                                       local_addr=(host, port))
    log.info("reading the carrier's Retry-After from Asterisk's HEP capture on %s:%d", host, port)
    return transport
