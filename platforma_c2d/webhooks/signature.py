"""The signature of a webhook delivery (SPEC §10).

``X-Platforma-Signature: t=<unix seconds>,v1=<hex>``, where ``v1`` is
HMAC-SHA256 keyed with the endpoint's secret over ``<t>.<the raw body>``:
the scheme integrators already check for other providers (the timestamp
in the signed text stops a captured delivery from being replayed later).
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER_SIGNATURE = "X-Platforma-Signature"
HEADER_EVENT_ID = "X-Platforma-Event-Id"


def sign(secret: str, body: bytes, t: int | None = None) -> str:
    """The ``X-Platforma-Signature`` value of ``body`` (bytes as sent) at ``t``
    (Unix seconds; now when None)."""
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance_s: int = 300, now: float | None = None) -> bool:
    """Whether ``header`` (an ``X-Platforma-Signature`` value) signs ``body`` with ``secret``,
    made within ``tolerance_s`` seconds of ``now``. Constant-time comparison; never raises."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts.get("t", ""))
    except ValueError:
        return False
    now = time.time() if now is None else now
    if abs(now - t) > tolerance_s:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    # As bytes: compare_digest raises TypeError for a str with a non-ASCII character.
    return hmac.compare_digest(expected.encode(), parts.get("v1", "").encode("utf-8", "replace"))
