"""Placing a REST call across the threading boundary of decision 0002.

* :func:`load_place_request` — on an HTTP thread: the decoded JSON body
  turned into a :class:`PlaceRequest` (the SPEC §1 rules, the call's own
  ``status_callback``), or a 400 naming every bad field. Pure: no call
  state, no I/O.
* :class:`Placer` — on the telephony thread: the ``Idempotency-Key``
  lookup, the limits and the engine's start, in one step with no ``await``
  between the lookup and the submission of the new call, so that two
  requests with one key cannot both dial. It holds the calls being placed
  now (call state: only this thread touches it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from platforma_c2d import rules
from platforma_c2d.calls.errors import (AgentBusy, AsteriskUnavailable, IdempotencyConflict, InvalidRequest,
                                        TooManyCalls)
from platforma_c2d.calls.model import new_call_id, utcnow
from platforma_c2d.config import LimitsConfig
from platforma_c2d.webhooks.callback import check_status_callback

#: Seconds a client is asked to wait after ``too-many-calls``.
RETRY_AFTER_CAP_S = 5


@dataclass(frozen=True)
class PlaceRequest:
    """A ``POST /click2dial/calls`` as loaded from its body (SPEC §1, §2).

    ``call``: the validated fields; ``status_callback``: the call's own
    webhook URL (checked) or None; ``request_hash``: SHA-256 hex of the body
    in canonical JSON (an ``Idempotency-Key`` replay must carry the same);
    ``body``: the decoded body as received (what another instance is sent).
    """

    call: rules.CallRequest
    status_callback: str | None
    request_hash: str
    body: dict


def request_hash(body: object) -> str:
    """SHA-256 hex digest of ``body`` as canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def load_place_request(body: object, allowed_url_prefixes: tuple[str, ...]) -> PlaceRequest:
    """Turn a decoded JSON body into a :class:`PlaceRequest`.

    ``allowed_url_prefixes``: ``[webhooks] allowed_url_prefixes``, which a
    ``status_callback`` must start with. Raises ``InvalidRequest`` (400)
    with every bad field at once (the input rules' and ``status_callback``'s).
    """
    callback, bad = None, {}
    if isinstance(body, dict) and "status_callback" in body:
        try:
            callback = check_status_callback(body["status_callback"], allowed_url_prefixes)
        except ValueError as exc:
            bad["status_callback"] = str(exc)
    try:
        req = rules.validate_call_request(body)
    except rules.ValidationError as exc:
        raise InvalidRequest("the request breaks the Click2Dial input rules",
                             {"fields": {**exc.errors, **bad}}) from None
    if bad:
        raise InvalidRequest("the request breaks the Click2Dial input rules", {"fields": bad})
    return PlaceRequest(call=req, status_callback=callback, request_hash=request_hash(body), body=body)


def check_call_caps(engine, limits: LimitsConfig, token_name: str) -> None:
    """Refuse a new API call when ``[limits] max_active_calls`` calls are up
    in the service, or ``max_active_calls_per_token`` calls placed with
    ``token_name`` (0 = no cap). Counts the engine's calls not yet ended
    (REST and browser calls; FastAGI calls are the dialplan's). Raises
    :class:`TooManyCalls` (429, ``Retry-After``), whose id the rejected-
    requests metric counts. Run on the telephony thread."""
    for scope, cap, active in (
            ("service", limits.max_active_calls, lambda: engine.active_calls()),
            ("token", limits.max_active_calls_per_token, lambda: engine.active_calls(token_name))):
        if cap and active() >= cap:
            raise TooManyCalls(f"{cap} calls are up already for this {scope}; try again when one ends",
                               {"scope": scope, "max_active_calls": cap},
                               headers={"Retry-After": str(RETRY_AFTER_CAP_S)},
                               hint=f"[limits] max_active_calls{'_per_token' if scope == 'token' else ''}")


class Placer:
    """Places REST calls on the telephony thread (every method runs on the engine's loop).

    ``engine``: the ``CallEngine``; ``journal``: the call journal (read for
    a replay); ``limits``: ``[limits]``; ``is_connected``: returns whether
    the ARI event socket is up now.
    """

    def __init__(self, engine, journal, limits: LimitsConfig, is_connected: Callable[[], bool]):
        self.engine, self.journal, self.limits, self.is_connected = engine, journal, limits, is_connected
        #: (token name, Idempotency-Key) -> (call id, request hash) of calls
        #: being placed now, not yet committed
        self._placing: dict[tuple[str, str], tuple[str, str]] = {}

    async def place(self, request: PlaceRequest, clid: str, token_name: str,
                    idempotency_key: str | None) -> tuple[dict, bool]:
        """Place ``request`` with ``clid``; returns (call resource, replayed).

        A replay of ``idempotency_key`` (same token, within ``[limits]
        idempotency_window_s``, the same body) returns the first call and
        dials nothing. Raises ``IdempotencyConflict`` (422, the key with
        another body), ``AsteriskUnavailable`` (503), ``AgentBusy`` (409),
        ``TooManyCalls`` (429).
        """
        journal = self.journal
        key = (token_name, idempotency_key or "")
        if idempotency_key:
            placing = self._placing.get(key)
            if placing is not None:  # the same key, a moment ago: its record is on its way
                await self.engine.flush()
                first = journal.get_row(placing[0])
            else:
                since = utcnow() - timedelta(seconds=self.limits.idempotency_window_s)
                first = journal.find_idempotent(token_name, idempotency_key, since)
            if first is not None:
                if first["request_hash"] != request.request_hash:
                    raise IdempotencyConflict("this Idempotency-Key was used with another body",
                                              {"idempotency_key": idempotency_key[:80]})
                return journal.get(first["id"]), True
        if not self.is_connected():
            raise AsteriskUnavailable("the PBX is not connected; try again shortly")
        limit = self.limits.max_active_calls_per_agent
        req = request.call
        if limit and self.engine.active_for_agent(req.agent) >= limit:
            raise AgentBusy("the agent already has an active call",
                            {"agent": req.agent, "max_active_calls": limit})
        check_call_caps(self.engine, self.limits, token_name)
        call_id = new_call_id()
        if idempotency_key:
            self._placing[key] = (call_id, request.request_hash)
        try:
            call = await self.engine.start_rest_call(req, clid, call_id=call_id, token_name=token_name,
                                                     idempotency_key=idempotency_key,
                                                     request_hash=request.request_hash,
                                                     status_callback=request.status_callback)
        finally:
            if self._placing.get(key, ("",))[0] == call_id:
                del self._placing[key]  # committed now (or failed): the journal knows
        return call.to_dict(), False
