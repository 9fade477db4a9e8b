"""``[pages]``: the agent's browser phone and the supervisors' board (SPEC section 13,
docs/pages.md), one section of :class:`~platforma_c2d.config.schema.Config`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from platforma_c2d.config.checks import _in_range
from platforma_c2d.config.fields import HOUR_S
from platforma_c2d.config.fields import option as _opt

_WS_URL = re.compile(r"wss?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")
_ICE_URL = re.compile(r"(stun|stuns|turn|turns):[A-Za-z0-9.:\[\]-]+(\?transport=(udp|tcp))?")


@dataclass(frozen=True)
class PagesConfig:
    """``[pages]``: the agent's browser phone and the supervisors' board
    (SPEC section 13, docs/pages.md). ``websocket_urls``: the PBX's SIP
    WebSocket URLs the phone may register to (the first is preselected; the
    page's Content-Security-Policy lets it connect to these and nothing
    else); ``sip_domain``: the domain of the agents' SIP URIs ("" = the host
    of the chosen WebSocket URL); ``ice_servers``: STUN/TURN URLs handed to
    the browser; ``session_ttl_s``: how long a page login lasts (seconds)."""

    websocket_urls: tuple[str, ...] = _opt(
        ("ws://127.0.0.1:8088/ws",), "strs", "a non-empty list of ws:// or wss:// URLs", bool,
        item_ok=lambda v: _WS_URL.fullmatch(v) is not None,
        item_desc="a ws:// or wss:// URL (host, optional port and path; no credentials, query or fragment)",
    )
    sip_domain: str = _opt("", "str", "a host name or IP address, or \"\"",
                           lambda v: v == "" or re.fullmatch(r"[A-Za-z0-9.-]{1,253}", v) is not None)
    ice_servers: tuple[str, ...] = _opt(
        (), "strs", "a list of stun:/turn: URLs",
        item_ok=lambda v: _ICE_URL.fullmatch(v) is not None, item_desc="stun:host[:port] or turn:host[:port]",
    )
    session_ttl_s: int = _opt(3600, "int", f"a positive integer (seconds, at most {HOUR_S * 24})",
                              _in_range(0, HOUR_S * 24))
