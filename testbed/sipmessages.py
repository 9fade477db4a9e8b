"""SIP messages as a SIPp peer logged them, and what tests read in them.

``parse_messages`` reads a SIPp ``-message_file`` log (``-trace_msg``) into
:class:`SipMessage` records, each with its direction and time; the helpers
read a message's headers, the user part of a URI, and every identity a
message carries (the trunk must never see the agent's extension, SPEC §3.7).
Pure text handling: no process, no socket (``testbed/sipp.py`` runs the
peers, ``testbed/wire.py`` reads packets).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass
class SipMessage:
    """One SIP message from a peer's log: ``direction`` is "sent" or "received".

    ``time``: when SIPp logged it (sent or received), seconds since the epoch
    (the machine's clock, microseconds), from the timestamp line SIPp writes
    before each message; None when the log has no readable timestamp.
    """

    direction: str
    text: str
    time: float | None = None

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    @property
    def method(self) -> str | None:
        """The request method, or None for a response."""
        first = self.first_line
        return None if first.startswith("SIP/2.0") else first.split(" ", 1)[0]

    @property
    def status(self) -> int | None:
        """The response code, or None for a request."""
        first = self.first_line
        return int(first.split()[1]) if first.startswith("SIP/2.0") else None

    def header(self, name: str) -> list[str]:
        """Values of every header ``name`` (case-insensitive, compact forms not expanded)."""
        return header_values(self.text, name)


def header_values(message: str, name: str) -> list[str]:
    """Values of every header ``name`` of a SIP message text (case-insensitive)."""
    out = []
    for line in message.replace("\r\n", "\n").split("\n")[1:]:
        if not line.strip():
            break
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            out.append(v.strip())
    return out


def sip_user(value: str) -> str:
    """The user part of the first SIP URI in a header value ("" when none)."""
    start = value.find("sip:")
    if start < 0:
        return ""
    return value[start + 4:].split("@", 1)[0].split(";", 1)[0].split(">", 1)[0]


def identities(message: str) -> list[tuple[str, str]]:
    """Every identity a SIP message carries, whatever the header: (where, value).

    Looks at the start line and every header line (not the body): the user
    part of each ``sip:``/``sips:`` URI that has one, each ``tel:`` number
    and each quoted display
    name. ``where`` is the header name (or the method for the Request-URI).
    """
    out = []
    lines = message.replace("\r\n", "\n").split("\n")
    for i, line in enumerate(lines):
        if i and not line.strip():
            break
        where = line.split(" ", 1)[0] if i == 0 else line.partition(":")[0].strip()
        if i and where.lower() in ("via", "v", "call-id", "i"):
            continue   # addresses and random ids, never a party
        for user in re.findall(r"sips?:([^@;>\s,]+)@", line) + re.findall(r"tel:([^;>\s,]+)", line):
            out.append((where, user))
        for name in re.findall(r'"([^"]*)"', line):
            out.append((where, name))
    return out


def log_time(stamp: str) -> float | None:
    """Seconds since the epoch of a SIPp log timestamp (``2026-01-31T12:00:00.123456Z``)."""
    stamp = stamp.strip()
    if not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        # Older SIPp: "date<TAB>time<TAB>epoch.micro".
        epoch = [t for t in stamp.split() if re.fullmatch(r"\d{9,}\.\d+", t)]
        return float(epoch[-1]) if epoch else None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def parse_messages(text: str) -> list[SipMessage]:
    """Every SIP message of a SIPp ``-message_file`` log's ``text``, in order, with its time."""
    text = text.replace("\r\n", "\n")
    parts = re.split(r"\n?-{20,}([^\n]*)\n", text)
    out = []
    # parts: [before the first separator, stamp 1, block 1, stamp 2, block 2, ...]
    for stamp, block in zip(parts[1::2], parts[2::2]):
        m = re.match(r"\s*(UDP|TCP) message (sent|received) \[\d+\] bytes ?:\s*\n\n?", block)
        if m:
            out.append(SipMessage("sent" if m.group(2) == "sent" else "received",
                                  block[m.end():].strip("\n") + "\n", log_time(stamp)))
    return out
