"""What reaches a SIP peer's port, timed by the kernel: the bench's view of the wire.

A SIPp peer logs each message when its main loop gets to it, which on a
loaded machine can be tens of milliseconds after the packet arrived, and
not by the same lag for every packet. A carrier counts the INVITEs that
reach it, so a test of a call rate reads their arrival from a packet
socket on the loopback interface instead, each packet stamped by the
kernel as it passed (``SO_TIMESTAMPNS``), whatever the test's threads were
doing then. Needs root (a packet socket), like the rest of the bench.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
from dataclasses import dataclass

#: ``<linux/socket.h>``: ask for a kernel timestamp (struct timespec) with each packet.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_ETH_P_IP = 0x0800
#: ``<linux/if_packet.h>``: a packet a loopback socket receives (its sent copy is ``PACKET_OUTGOING``).
_PACKET_HOST = 0


@dataclass(frozen=True)
class WireInvite:
    """An INVITE outside a dialog (no To tag) seen going to the port: ``time``,
    seconds since the epoch (kernel stamp); ``call_id``; ``request_uri``."""

    time: float
    call_id: str
    request_uri: str


def parse_invite(payload: bytes) -> tuple[str, str] | None:
    """``(call_id, request_uri)`` of an initial INVITE's UDP payload; None for any other
    message (a response, another method, a re-INVITE whose To has a tag)."""
    if not payload.startswith(b"INVITE "):
        return None
    head = payload.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    to = headers.get("to", headers.get("t", ""))
    if re.search(r";\s*tag=", to):
        return None
    return headers.get("call-id", headers.get("i", "")), lines[0].split(" ")[1]


class InviteTap:
    """The initial INVITEs sent over UDP to ``port`` on the loopback interface, in the order
    they passed, a retransmission counted once (its first copy). A context manager: taps
    from ``__enter__`` to ``__exit__``; :meth:`invites` may be read at any time."""

    def __init__(self, port: int, interface: str = "lo"):
        self.port, self.interface = port, interface
        self._seen: dict[str, WireInvite] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> InviteTap:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(_ETH_P_IP))
        sock.bind((self.interface, 0))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="invite-tap", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()

    def invites(self) -> list[WireInvite]:
        """The INVITEs seen so far, by the time they passed."""
        with self._lock:
            return sorted(self._seen.values(), key=lambda i: i.time)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _flags, address = self._sock.recvmsg(65535, 64)
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] != _PACKET_HOST:
                continue
            stamp = next((struct.unpack("qq", d[:16]) for level, kind, d in ancillary
                          if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS), None)
            found = self._udp_to_port(data)
            if stamp is None or found is None:
                continue
            invite = parse_invite(found)
            if invite is None:
                continue
            with self._lock:
                self._seen.setdefault(invite[0], WireInvite(stamp[0] + stamp[1] / 1e9, *invite))

    def _udp_to_port(self, packet: bytes) -> bytes | None:
        """The UDP payload of an IPv4 ``packet`` to :attr:`port`, else None."""
        if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_UDP:
            return None
        start = (packet[0] & 0x0F) * 4
        if len(packet) < start + 8 or struct.unpack_from("!H", packet, start + 2)[0] != self.port:
            return None
        return packet[start + 8:]
