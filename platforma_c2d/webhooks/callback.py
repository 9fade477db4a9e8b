"""A call's own ``status_callback`` URL (SPEC §10): accepted only under an allowed prefix."""

from __future__ import annotations

from platforma_c2d.config.checks import _ok_http_url

MAX_URL = 2000


def check_status_callback(value: object, allowed_prefixes: tuple[str, ...]) -> str | None:
    """The ``status_callback`` of a POST body, checked; None when not given (absent or null).

    Accepted only when it is an http(s) URL of at most 2,000 characters that
    starts with one of ``[webhooks] allowed_url_prefixes`` (each prefix
    ends its host with a ``/``, so ``https://crm.example.com.evil/`` never
    passes for ``https://crm.example.com/``): the service cannot be made to
    POST to an internal address. Raises ``ValueError`` with what is wrong.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.isascii() or len(value) > MAX_URL or not _ok_http_url(value):
        raise ValueError(f"must be an http(s)://host/path URL of at most {MAX_URL} ASCII characters")
    if not allowed_prefixes:
        raise ValueError("not accepted: no [webhooks] allowed_url_prefixes are configured")
    if not any(value.startswith(prefix) for prefix in allowed_prefixes):
        raise ValueError("not under an allowed URL prefix ([webhooks] allowed_url_prefixes)")
    return value
