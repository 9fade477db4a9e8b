"""A call's own ``status_callback`` URL (SPEC §10): accepted only under an allowed prefix."""

from __future__ import annotations

from urllib.parse import unquote

from platforma_c2d.config.checks import _ok_http_url

MAX_URL = 2000

#: Path segments an HTTP client resolves away before it sends (RFC 3986 §5.2.4),
#: once percent-decoded: ``/hooks/../admin`` and ``/hooks/%2e%2e/admin`` are ``/admin``.
_DOT_SEGMENTS = (".", "..")


def _has_dot_segment(url: str) -> bool:
    """Whether the path of ``url`` (an ``http(s)://host/path`` URL) holds a ``.`` or
    ``..`` segment, written plainly or percent-encoded."""
    path = url.split("?", 1)[0].split("/", 3)[3]
    return any(unquote(segment) in _DOT_SEGMENTS for segment in path.split("/"))


def check_status_callback(value: object, allowed_prefixes: tuple[str, ...]) -> str | None:
    """The ``status_callback`` of a POST body, checked; None when not given (absent or null).

    Accepted only when it is an http(s) URL of at most 2,000 characters that
    starts with one of ``[webhooks] allowed_url_prefixes`` (each prefix
    ends its host with a ``/``, so ``https://crm.example.com.evil/`` never
    passes for ``https://crm.example.com/``) and whose path holds no ``.``
    or ``..`` segment (plain or percent-encoded): the delivery's HTTP
    client resolves those, so ``<prefix>../admin`` would be sent outside the
    prefix. The service cannot be made to POST to an internal address, nor
    to another path of an allowed host. Raises ``ValueError`` with what is wrong.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.isascii() or len(value) > MAX_URL or not _ok_http_url(value):
        raise ValueError(f"must be an http(s)://host/path URL of at most {MAX_URL} ASCII characters")
    if not allowed_prefixes:
        raise ValueError("not accepted: no [webhooks] allowed_url_prefixes are configured")
    if not any(value.startswith(prefix) for prefix in allowed_prefixes):
        raise ValueError("not under an allowed URL prefix ([webhooks] allowed_url_prefixes)")
    if _has_dot_segment(value):
        raise ValueError("must not hold a '.' or '..' path segment (it would leave the allowed URL prefix)")
    return value
