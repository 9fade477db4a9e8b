"""Reading an X-Platforma header whole, or refusing it (SPEC §4).

Asterisk reads a SIP header through ``PJSIP_HEADER(read,NAME[,N])`` into a
4,096-byte buffer: a header longer than 4,095 bytes fails exactly like a
missing one. ``PJSIP_HEADERS(PREFIX)`` lists the names of the INVITE's
headers starting with ``PREFIX`` (case-insensitively, each copy of a
repeated header listed again, comma-separated), and fails when none starts
with it or when one of them cannot be printed whole; ``PJSIP_HEADERS()``
(no prefix) lists every header, and fails only when one of them, whatever
its name, cannot be read whole. Read together, they tell a header that is
absent from one that is present but unreadable, and a second copy even when
that copy is too long to read (checked against Asterisk 22 by
tests/integration/test_long_headers.py).

:func:`read` asks Asterisk as little as it can: for each header one
``GET /channels/{id}/variables`` of its first copy and its listing, and
only for a header that request cannot settle, every function one by one.
"""

from __future__ import annotations

import asyncio
import re

#: The headers a phone's INVITE carries (SPEC §4), for the Stasis app and the FastAGI scripts alike.
HEADER_OUTBOUND_ID = "X-Platforma-Outbound-ID"
HEADER_CALL_REF = "X-Platforma-Call-Ref"

ALL_HEADERS = "PJSIP_HEADERS()"

_CHANNEL_NAME = re.compile(r"[A-Za-z0-9]+/([^/]+)-[0-9a-f]+")


def agent_from_channel_name(name: str) -> str:
    """The calling endpoint, the agent of a phone's call (SPEC §4): the endpoint part of a
    channel name (``"PJSIP/3001-0000002a"`` -> ``"3001"``); ``""`` when ``name`` is not
    ``TECH/endpoint-hex`` (a Local channel, say)."""
    match = _CHANNEL_NAME.fullmatch(name)
    return match.group(1) if match else ""


def functions(name: str) -> tuple[str, str, str]:
    """The dialplan functions to read for header ``name``, in :func:`judge`'s order.

    The first copy, the second copy and the list of header names starting
    with ``name``; :data:`ALL_HEADERS` is read once for all headers.
    """
    return (f"PJSIP_HEADER(read,{name})", f"PJSIP_HEADER(read,{name},2)",
            f"PJSIP_HEADERS({name})")


def judge(name: str, first: str | None, second: str | None, listed: str | None,
          every: str | None) -> tuple[str | None, str | None]:
    """Header ``name``'s value, or why it is refused: ``(value, problem)``.

    ``first``, ``second``, ``listed``: what :func:`functions` read (None or
    ``""`` when Asterisk could not read it); ``every``: what
    :data:`ALL_HEADERS` read. ``value`` is None when the header is not given
    (an empty header is not given). ``problem`` is None, or the message of
    the refusal (SPEC §4: a header given twice, or present but not readable
    whole, is refused with 403, never taken as absent). When some header of
    the INVITE cannot be read whole and ``name`` cannot be read either,
    Asterisk cannot tell whether that header is ``name``: refused too.
    """
    repeated = f"{name} given more than once"
    unreadable = f"{name} could not be read whole (over 4,095 bytes)"
    if second:
        return None, repeated
    if listed:
        copies = sum(1 for item in listed.split(",") if item.strip().lower() == name.lower())
        if copies > 1:
            return None, repeated
        # Listed whole: each copy printed whole, so the first read whole too
        # ("" is an empty header, or over AGI a read that failed: not given).
        return first or None, None
    # No header starts with ``name``, or one that does cannot be printed whole.
    if first:
        return None, repeated          # the first copy reads: another copy does not
    if not every:
        return None, unreadable        # absent or too long: Asterisk cannot say which
    return None, None


async def read(ari, channel_id: str, names: tuple[str, ...]) -> list[tuple[str | None, str | None]]:
    """Read headers ``names`` of the channel's INVITE: :func:`judge`'s ``(value, problem)`` of each.

    ``ari``: an ``AriClient``. First, for every header at once, one
    request of its first copy and the list of names starting with it
    (``get_variables``). When both read and the list is not empty, the list
    says how many copies there are (each printed whole), so the second copy
    and the list of every header add nothing. When that request fails (the
    header is absent, or a copy cannot be read whole, or Asterisk predates
    the request), that header's three functions and :data:`ALL_HEADERS`
    are read one by one, all at once, as :func:`judge` needs them. Raises
    ``AriError`` when a read fails for another reason than the function
    failing (the channel is gone, Asterisk is unreachable).
    """
    quick = await asyncio.gather(*(ari.get_variables(channel_id, list(functions(name)[::2]))
                                   for name in names), return_exceptions=True)
    results: dict[str, tuple[str | None, str | None]] = {}
    slow = []
    for name, got in zip(names, quick):
        if isinstance(got, BaseException):
            raise got
        first, listed = functions(name)[::2]
        if got is not None and got[listed]:
            results[name] = judge(name, got[first], None, got[listed], None)
        else:
            slow.append(name)
    if slow:
        reads = [fn for name in slow for fn in functions(name)]
        values = await asyncio.gather(*(ari.get_variable(channel_id, fn) for fn in (*reads, ALL_HEADERS)),
                                      return_exceptions=True)
        for value in values:
            if isinstance(value, BaseException):
                raise value
        for i, name in enumerate(slow):
            results[name] = judge(name, *values[3 * i:3 * i + 3], values[-1])
    return [results[name] for name in names]


__all__ = ["ALL_HEADERS", "functions", "judge", "read"]
