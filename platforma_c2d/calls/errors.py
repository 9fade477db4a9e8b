"""Errors of the call service as data: HTTP status, a stable kebab-case id,
a message and details (SPEC §2). The HTTP layer maps them to JSON in one
place; the service never imports Flask."""

from __future__ import annotations


class C2DError(Exception):
    """Base of every error an API client may see.

    ``status``: HTTP status; ``error``: kebab-case id; ``message``: one
    sentence for humans; ``details``: machine-readable extras (dict);
    ``headers``: extra HTTP headers (e.g. Retry-After).
    """

    status = 500
    error = "internal-error"

    def __init__(self, message: str, details: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


class InvalidRequest(C2DError):
    """400: the body breaks the rules of SPEC §1; ``details`` maps each bad field to why."""

    status, error = 400, "invalid-request"


class Unauthorized(C2DError):
    """401: no or unknown bearer token."""

    status, error = 401, "unauthorized"


class Forbidden(C2DError):
    """403: authenticated, but not allowed (agent not in the token's list)."""

    status, error = 403, "forbidden"


class ClidNotAllowed(C2DError):
    """403: the outbound_id is not in ``[clid].allowed``."""

    status, error = 403, "clid-not-allowed"


class DestinationNotAllowed(C2DError):
    """403: the callee or external agent number is refused by ``[policy]``."""

    status, error = 403, "destination-not-allowed"


class NoSuchCall(C2DError):
    """404: no call with this id."""

    status, error = 404, "no-such-call"


class AgentBusy(C2DError):
    """409: the agent already has the maximum number of active calls."""

    status, error = 409, "agent-busy"


class NotCancellable(C2DError):
    """409: the call cannot be hung up from here (an ``agi`` call journalled with no channel)."""

    status, error = 409, "not-cancellable"


class InvalidJson(C2DError):
    """400: the body is declared JSON but is not JSON (does not parse, not UTF-8, NaN or Infinity)."""

    status, error = 400, "invalid-json"


class UnsupportedMediaType(C2DError):
    """415: the body is not declared JSON (``Content-Type``)."""

    status, error = 415, "unsupported-media-type"


class IdempotencyConflict(C2DError):
    """422: the Idempotency-Key was used before with a different body."""

    status, error = 422, "idempotency-key-reused"


class RateLimited(C2DError):
    """429: too many requests for this token; ``headers`` carries Retry-After."""

    status, error = 429, "rate-limited"


class AsteriskUnavailable(C2DError):
    """503: the ARI connection is down; no call can be placed now."""

    status, error = 503, "asterisk-unavailable"
