"""Bearer-token authentication (issue "toll fraud", SPEC §7 ``[auth]``).

Tokens are configured as SHA-256 hex digests; the presented token is hashed
and compared with ``hmac.compare_digest`` against every configured digest
(constant time, no early exit on the first match). With no token configured
authentication is off — the config refuses that on a non-loopback address.
"""

from __future__ import annotations

import hashlib
import hmac

from platforma_c2d.calls.errors import Unauthorized
from platforma_c2d.calls.service import Caller
from platforma_c2d.config import AuthConfig


class Authenticator:
    """Maps an ``Authorization`` header to a ``Caller``; raises ``Unauthorized`` (401)."""

    def __init__(self, auth: AuthConfig):
        self.entries: list[tuple[str, Caller]] = [
            (h, Caller(name=f"token-{i + 1}")) for i, h in enumerate(auth.tokens_sha256)]
        for i, tok in enumerate(auth.tokens):
            self.entries.append((tok.sha256, Caller(name=tok.name or f"named-token-{i + 1}",
                                                    agents=tuple(tok.agents))))
        self.enabled = bool(self.entries)

    def authenticate(self, header: str | None) -> Caller:
        """The caller for ``header`` (``"Bearer <token>"``); anonymous when auth is off."""
        if not self.enabled:
            return Caller()
        # "Bearer", then spaces or tabs, then the token (RFC 6750 allows
        # one space; tabs and extra blanks are tolerated, never needed).
        scheme, _, token = (header or "").strip(" \t").replace("\t", " ").partition(" ")
        token = token.strip(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        found = None
        for known, caller in self.entries:
            if hmac.compare_digest(known, digest) and found is None:
                found = caller
        if found is None:
            raise Unauthorized("unknown bearer token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return found

    def by_name(self, name: str) -> Caller | None:
        """The configured caller called ``name`` (page sessions); the
        anonymous caller when auth is off; ``None`` if there is none."""
        if not self.enabled:
            return Caller()
        return next((caller for _, caller in self.entries if caller.name == name), None)
