"""Placing a REST call across the threading boundary of decision 0002.

* :func:`load_place_request` — on an HTTP thread: the decoded JSON body
  turned into a :class:`PlaceRequest` (the SPEC §1 rules, the call's own
  ``status_callback``), or a 400 naming every bad field. Pure: no call
  state, no I/O.
* :func:`claim_key` — on an HTTP thread, before the call is handed over:
  the ``Idempotency-Key`` claimed in the store (``store/idempotency.py``),
  so that of two requests with one key at the same moment, on one
  instance or on two instances of a cluster, one dials and the other
  replays its call (or gets 422); :func:`release_key` gives it back when
  nothing was placed.
* :class:`Placer` — on the telephony thread: the ``Idempotency-Key``
  lookup (of calls journalled before keys were claimed), the limits and the engine's start, in one step with no ``await``
  between the lookup and the submission of the new call, so that two
  requests with one key cannot both dial. It holds the calls being placed
  now (call state: only this thread touches it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import sqlalchemy as sa

from platforma_c2d import rules
from platforma_c2d.calls.agent_limit import agent_is_busy
from platforma_c2d.calls.errors import (AgentBusy, AsteriskUnavailable, IdempotencyConflict, InvalidRequest,
                                        TooManyCalls)
from platforma_c2d.calls.model import new_call_id, utcnow
from platforma_c2d.config import LimitsConfig
from platforma_c2d.store import idempotency
from platforma_c2d.webhooks.callback import check_status_callback

log = logging.getLogger("platforma_c2d.api")

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


def claim_key(journal, limits: LimitsConfig, token_name: str, key: str, call_id: str, request_hash: str,
              timeout_s: float) -> dict | None:
    """Claim ``key`` of ``token_name`` in the store for the call ``call_id`` (SPEC §2, §11).

    Returns None when this request is to place the call; the first call's
    resource when the key was claimed within ``[limits] idempotency_window_s``
    with the same ``request_hash`` (waiting, up to ``timeout_s`` seconds, until
    the instance placing it has journalled it). Raises ``IdempotencyConflict``
    (422) for another body, ``AsteriskUnavailable`` (503) when the store does
    not answer or the first call is not journalled in time. Runs on an HTTP thread.
    """
    since = utcnow() - timedelta(seconds=limits.idempotency_window_s)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            held = idempotency.claim(journal.engine, token_name, key, call_id, request_hash, since)
            if held.call_id == call_id:
                return None
            if held.request_hash != request_hash:
                raise IdempotencyConflict("this Idempotency-Key was used with another body",
                                          {"idempotency_key": key[:80]})
            while True:   # the same body: the first call, once it is journalled
                first = journal.get(held.call_id)
                if first is not None:
                    return first
                if idempotency.holder(journal.engine, token_name, key) != held:
                    break   # given back (nothing was dialled): claim it again
                if time.monotonic() > deadline:
                    raise AsteriskUnavailable("the call with this Idempotency-Key is still being placed; "
                                              "try again shortly")
                time.sleep(0.05)
    except sa.exc.SQLAlchemyError as exc:
        raise AsteriskUnavailable("the store does not answer; try again shortly") from exc


def release_key(journal, token_name: str, key: str, call_id: str) -> None:
    """Give back the claim of ``key`` made for ``call_id`` when no call of that id is
    journalled (refused, or a replay of an older call). Runs on an HTTP thread;
    a store error is logged (the claim then lapses with its window)."""
    try:
        if journal.get(call_id) is None:
            idempotency.release(journal.engine, token_name, key, call_id)
    except sa.exc.SQLAlchemyError:
        log.warning("an Idempotency-Key claim was not given back; it lapses with its window")


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
                    idempotency_key: str | None, call_id: str | None = None) -> tuple[dict, bool]:
        """Place ``request`` with ``clid`` as the call ``call_id`` (a new id when None);
        returns (call resource, replayed).

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
        if await agent_is_busy(self.engine, req.agent, limit):   # FastAGI calls too
            raise AgentBusy("the agent already has an active call",
                            {"agent": req.agent, "max_active_calls": limit})
        check_call_caps(self.engine, self.limits, token_name)
        call_id = call_id or new_call_id()
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
