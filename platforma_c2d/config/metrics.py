"""``[metrics]``: who may scrape ``GET /metrics`` (SPEC section 2,
docs/security.md), one section of :class:`~platforma_c2d.config.schema.Config`."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from platforma_c2d.config.checks import _ok_sha256
from platforma_c2d.config.fields import option as _opt


def _ok_network(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: a scrape is served when it comes from an address in
    ``allow_from`` (IP addresses or networks; default loopback only), or
    when it carries the bearer token whose SHA-256 hex digest is
    ``token_sha256`` (a token for scrapers alone, not an API token: a
    Prometheus config holding it cannot place calls). Anything else is
    refused: 401 without the right token when a token is configured, else
    403. The metrics name numbers (``c2d_clid_*``) and show the traffic."""

    allow_from: tuple[str, ...] = _opt(
        ("127.0.0.0/8", "::1"), "strs", "a list of IP addresses or networks",
        item_ok=_ok_network, item_desc="an IP address or network (192.0.2.7, 192.0.2.0/24, 2001:db8::/32)")
    token_sha256: str = _opt("", "str", "\"\" or 64 hex characters (a SHA-256 hex digest)",
                             lambda v: v == "" or _ok_sha256(v), secret=True, norm=str.lower)

    def allows(self, address: str | None) -> bool:
        """Whether a scrape from ``address`` (the peer's IP address as text;
        an IPv4-mapped IPv6 address counts as its IPv4 one) is served without a token."""
        try:
            ip = ipaddress.ip_address((address or "").split("%", 1)[0])
        except ValueError:
            return False
        ip = getattr(ip, "ipv4_mapped", None) or ip
        return any(ip in ipaddress.ip_network(net, strict=False) for net in self.allow_from)
