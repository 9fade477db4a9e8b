"""Value checks: pure predicates on an already typed config value.

``split_listen`` and ``is_loopback`` read listen addresses, ``mask_url``
hides the password of a URL (SPEC section 9); the ``_ok_*`` helpers are the
per-key checks that :mod:`platforma_c2d.config.schema` attaches to its
fields. No I/O, no knowledge of sections.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Callable

MASK = "***"
#: The FastAGI secret earlier versions shipped in their samples: public, so as good as none.
SAMPLE_AGI_SECRET = "change-me-agi"

def split_listen(value: str) -> tuple[str, int]:
    """Split a listen address ``host:port`` (IPv6 as ``[::1]:8080``).

    Returns ``(host, port)``, the host without brackets. Raises
    :class:`ValueError` when the host is empty or not a host name or IP
    address, or the port is not ASCII digits in 1-65535.
    """
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([A-Za-z0-9.-]+):([0-9]{1,5})", value)
    if not m:
        raise ValueError(f"not host:port: {value!r}")
    host, port = (m[1], m[2]) if m[1] else (m[3], m[4])
    if m[1]:
        ipaddress.IPv6Address(host)  # raises ValueError
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port out of range: {port}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Return whether ``host`` is ``localhost`` or a loopback IP address
    (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ok_listen(value: str) -> bool:
    try:
        split_listen(value)
    except ValueError:
        return False
    return True


def _ok_ari_url(value: str) -> bool:
    m = re.fullmatch(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?/?", value)
    return bool(m) and _ok_listen(f"{m[1]}:{m[2] or 80}")


def _ok_endpoint(placeholder: str) -> Callable[[str], bool]:
    """TECH/resource with ``{placeholder}`` in it and no other placeholder."""

    def ok(value: str) -> bool:
        try:
            parts = list(string.Formatter().parse(value))
        except ValueError:  # unbalanced braces
            return False
        names = [(name, conv, spec) for _, name, spec, conv in parts if name is not None]
        return (
            re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*/\S+", value) is not None
            and bool(names)
            and all(n == (placeholder, None, "") for n in names)
        )

    return ok


def _ok_printable(value: str) -> bool:
    return value != "" and value.isprintable()


def _in_range(low: float, high: float, *, low_included: bool = False) -> Callable[[float], bool]:
    """A check: ``low < value <= high`` (``low <= value`` with ``low_included``).

    The upper bounds keep a number out of the range where the service could
    only fail later (a date or a socket timeout that overflows, a thread
    count no machine has): every key fails at start-up instead (SPEC §7).
    """
    def ok(value: float) -> bool:
        return (value >= low if low_included else value > low) and value <= high
    return ok


def _ok_sha256(value: str) -> bool:
    return re.fullmatch(r"[0-9A-Fa-f]{64}", value) is not None


def _ok_prefix(value: str) -> bool:
    return re.fullmatch(r"[0-9]+", value) is not None


def _ok_http_url(value: str) -> bool:
    """An http(s) URL with a host and a path (at least ``/``), no spaces, no fragment."""
    return re.fullmatch(r"https?://[^/\s?#@]+/[^\s#]*", value) is not None


def _ok_store_url(value: str) -> bool:
    return re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://\S*", value) is not None


#: A ``password=`` query parameter (libpq and SQLAlchemy take the password there too).
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?password=)[^&#]*", re.I)


def mask_url(url: str) -> str:
    """Return ``url`` with the password of its user info (``user:pw@``)
    replaced by ``***`` (user info without ``:`` is masked whole), and the
    value of a ``password=`` / ``sslpassword=`` query parameter too."""
    url = _QUERY_PASSWORD.sub(lambda q: q[1] + MASK, url)
    m = re.fullmatch(r"([^:/?#]*://)([^/?#]*)(.*)", url, re.S)
    if not m:
        return MASK if "@" in url else url
    if "@" not in m[2]:
        return url
    userinfo, host = m[2].rsplit("@", 1)
    user = userinfo.split(":", 1)[0] + ":" + MASK if ":" in userinfo else MASK
    return f"{m[1]}{user}@{host}{m[3]}"


def trunk_of(dial_string: str) -> tuple[str, str]:
    """The (technology, endpoint name) a ``[dial] trunk_endpoint`` dials through.

    ``PJSIP/{number}@trunk`` → ("PJSIP", "trunk");
    ``PJSIP/trunk/sip:{number}@host:port`` → ("PJSIP", "trunk");
    the name is "" when the string names none (``PJSIP/{number}``).
    """
    tech, _, rest = dial_string.replace("{number}", "").partition("/")
    if "/" in rest:
        return tech, rest.split("/", 1)[0]
    return tech, (rest.split("@", 1)[1] if "@" in rest else rest)
