"""Errors of the call service as data: HTTP status, a stable kebab-case id,
a message and details (SPEC §2). The HTTP layer maps them to JSON in one
place; the service never imports Flask. Each class names its error id; the
status comes from the error catalogue (platforma_c2d.contract.ERRORS)."""

from __future__ import annotations

from platforma_c2d.contract import ERRORS, RETRY_AFTER_503_S


class C2DError(Exception):
    """Base of every error an API client may see.

    ``status``: HTTP status; ``error``: kebab-case id; ``message``: one
    sentence for humans; ``details``: machine-readable extras (dict);
    ``headers``: extra HTTP headers (e.g. Retry-After); ``hint``: for the
    administrator, written to the log only (a config key, never sent to the
    client, whose messages speak the API's terms).
    """

    error = "internal-error"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.status = ERRORS[cls.error].status     # KeyError: an id missing from the catalogue

    status = ERRORS["internal-error"].status

    def __init__(self, message: str, details: dict | None = None, headers: dict | None = None,
                 hint: str = ""):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}
        self.hint = hint

    @property
    def fields(self) -> dict:
        """The refused fields (name -> why): ``details["fields"]``, else the details themselves."""
        return self.details.get("fields") or self.details


class InvalidRequest(C2DError):
    """400: the body breaks the rules of SPEC §1; ``details`` maps each bad field to why."""

    error = "invalid-request"


class Unauthorized(C2DError):
    """401: no or unknown bearer token."""

    error = "unauthorized"


class Forbidden(C2DError):
    """403: authenticated, but not allowed (agent not in the token's list)."""

    error = "forbidden"


class ClidNotAllowed(C2DError):
    """403: the outbound_id is not in ``[clid].allowed``."""

    error = "clid-not-allowed"


class DestinationNotAllowed(C2DError):
    """403: the callee or external agent number is refused by ``[policy]``."""

    error = "destination-not-allowed"


class HostNotAllowed(C2DError):
    """403: authentication is off and the Host or Origin header names no loopback address."""

    error = "host-not-allowed"


class NoSuchCall(C2DError):
    """404: no call with this id."""

    error = "no-such-call"


class AgentBusy(C2DError):
    """409: the agent already has the maximum number of active calls."""

    error = "agent-busy"


class TooManyCalls(C2DError):
    """429: ``[limits] max_active_calls`` (``scope: service``) or
    ``max_active_calls_per_token`` (``scope: token``) calls are up already."""

    error = "too-many-calls"


class NotCancellable(C2DError):
    """409: the call cannot be hung up from here (an ``agi`` call journalled with no channel)."""

    error = "not-cancellable"


class InvalidJson(C2DError):
    """400: the body is declared JSON but is not JSON (does not parse, not UTF-8, NaN or Infinity)."""

    error = "invalid-json"


class UnsupportedMediaType(C2DError):
    """415: the body is not declared JSON (``Content-Type``)."""

    error = "unsupported-media-type"


class IdempotencyConflict(C2DError):
    """422: the Idempotency-Key was used before with a different body."""

    error = "idempotency-key-reused"


class RateLimited(C2DError):
    """429: too many requests for this token; ``headers`` carries Retry-After."""

    error = "rate-limited"


class AsteriskUnavailable(C2DError):
    """503: the ARI connection is down; no call can be placed now."""

    error = "asterisk-unavailable"

    def __init__(self, message: str, details: dict | None = None, headers: dict | None = None):
        super().__init__(message, details, {"Retry-After": str(RETRY_AFTER_503_S), **(headers or {})})


class TooManyStreams(C2DError):
    """503: ``[webhooks] max_streams`` event streams are open already; try again later
    (``Retry-After``, as every 503 of this API)."""

    error = "too-many-streams"

    def __init__(self, message: str, details: dict | None = None, headers: dict | None = None):
        super().__init__(message, details, {"Retry-After": str(RETRY_AFTER_503_S), **(headers or {})})
