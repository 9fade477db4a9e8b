"""The call service: what the HTTP layer calls (SPEC §2), from any thread.

Validation (SPEC §1), policy and limits run here; anything that touches call
state is handed to the engine's event loop and awaited, so the HTTP threads
never share state with the telephony thread (docs/architecture.md). Reads go
straight to the journal. Raises ``C2DError`` subclasses, never HTTP objects.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta

from platforma_c2d import rules
from platforma_c2d.ari.client import AriError
from platforma_c2d.calls.engine import CallEngine
from platforma_c2d.calls.errors import (AgentBusy, AsteriskUnavailable, C2DError, Forbidden,
                                        IdempotencyConflict, InvalidRequest, NoSuchCall, NotCancellable,
                                        TooManyCalls)
from platforma_c2d.calls.model import EndedBy, Origin, Reason, State, new_call_id, utcnow
from platforma_c2d.calls.policy import Policy
from platforma_c2d.calls.recovery import call_from_row
from platforma_c2d.clid.picker import ClidPicker
from platforma_c2d.config import Config
from platforma_c2d.contract import TOTAL_COUNT_MAX
from platforma_c2d.store.journal import Journal
from platforma_c2d.webhooks.callback import check_status_callback

log = logging.getLogger("platforma_c2d.api")

#: Seconds a client is asked to wait after ``too-many-calls``.
RETRY_AFTER_CAP_S = 5



@dataclass(frozen=True)
class Caller:
    """Who is asking: the token's name ("" when auth is off) and the agents it may use (empty = all)."""

    name: str = ""
    agents: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListQuery:
    """Which calls to list (SPEC §2), every filter optional: ``states`` and
    ``origins`` (any of), ``agent``, ``call_ref``, ``created_after`` (at or
    after), ``created_before``, ``updated_after`` (timezone-aware datetimes),
    ``limit`` (calls per page) and ``before`` (the (created_at, id) the page
    starts after; from the cursor)."""

    states: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()
    agent: str | None = None
    call_ref: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    limit: int = 50
    before: tuple[str, str] | None = None


class CallService:
    """Place, read, list and cancel calls.

    ``loop``: the engine's running event loop (another thread);
    ``is_connected``: returns whether the ARI event socket is up now;
    ``picker``: chooses each call's CLID (SPEC §12).
    """

    def __init__(self, config: Config, engine: CallEngine, journal: Journal, policy: Policy,
                 loop: asyncio.AbstractEventLoop, is_connected, picker: ClidPicker, webhooks=None):
        self.config, self.engine, self.journal, self.policy = config, engine, journal, policy
        self.loop, self.is_connected, self.picker = loop, is_connected, picker
        self.webhooks = webhooks
        self._timeout = config.ari.request_timeout_s * 3 + 5
        #: (token name, Idempotency-Key) -> (call id, request hash) of calls
        #: being placed now, not yet committed (telephony thread only)
        self._placing: dict[tuple[str, str], tuple[str, str]] = {}

    def _settled(self) -> None:
        """Wait until every state change made so far is committed, so a read shows it.

        Raises ``AsteriskUnavailable`` when the journal does not catch up in time."""
        try:
            self.engine.writer.flush().result(timeout=self._timeout)
        except FutureTimeout as exc:
            raise AsteriskUnavailable("the call journal is not keeping up; try again shortly") from exc

    def _run(self, coro):
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout=self._timeout)
        except FutureTimeout as exc:
            future.cancel()
            raise AsteriskUnavailable("Asterisk did not answer in time") from exc

    # ------------------------------------------------------------------
    def place_call(self, body: object, caller: Caller = Caller(),
                   idempotency_key: str | None = None) -> tuple[dict, bool]:
        """Validate and place a REST call; returns (call resource, replayed).

        ``body``: the decoded JSON body. ``replayed`` is True when the same
        ``idempotency_key`` and body were seen within the window: the first
        call is returned and nothing is dialled. Raises ``InvalidRequest``
        (400), ``Forbidden``/``ClidNotAllowed``/``DestinationNotAllowed``
        (403), ``AgentBusy`` (409), ``IdempotencyConflict`` (422),
        ``TooManyCalls`` (429, :func:`check_call_caps`),
        ``AsteriskUnavailable`` (503).
        """
        callback, bad = None, {}
        if isinstance(body, dict) and "status_callback" in body:
            try:
                callback = check_status_callback(body["status_callback"],
                                                 self.config.webhooks.allowed_url_prefixes)
            except ValueError as exc:
                bad["status_callback"] = str(exc)
        try:
            req = rules.validate_call_request(body)
        except rules.ValidationError as exc:
            raise InvalidRequest("the request breaks the Click2Dial input rules",
                                 {"fields": {**exc.errors, **bad}}) from None
        if bad:
            raise InvalidRequest("the request breaks the Click2Dial input rules", {"fields": bad})
        if caller.agents and req.agent not in caller.agents:
            raise Forbidden("this token may not place calls for this agent",
                            {"fields": {"agent": "this token may not place calls for this agent"}},
                            hint=f"the token's [[auth.token]] agents do not include {req.agent}")
        request_hash = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                                      .encode()).hexdigest()
        self.policy.check(req)
        if not self.is_connected() and not idempotency_key:
            # Fail fast; with a key, a replay of a placed call is still answered.
            raise AsteriskUnavailable("the PBX is not connected; try again shortly")
        try:
            # In the store, from this thread: the event loop runs no SQL (decision 0008).
            choice = self.picker.choose(req, caller.name)
        except rules.RuleError as exc:
            raise InvalidRequest("no caller ID can be chosen", {"fields": {exc.field: exc.message}}) from None
        clid = choice.clid
        limit = self.config.limits.max_active_calls_per_agent

        async def place() -> tuple[dict, bool]:
            # On the telephony thread: two requests with one key cannot both dial.
            key = (caller.name, idempotency_key or "")
            if idempotency_key:
                placing = self._placing.get(key)
                if placing is not None:  # the same key, a moment ago: its record is on its way
                    await self.engine.flush()
                    first = self.journal.get_row(placing[0])
                else:
                    since = utcnow() - timedelta(seconds=self.config.limits.idempotency_window_s)
                    first = self.journal.find_idempotent(caller.name, idempotency_key, since)
                if first is not None:
                    if first["request_hash"] != request_hash:
                        raise IdempotencyConflict("this Idempotency-Key was used with another body",
                                                  {"idempotency_key": idempotency_key[:80]})
                    return self.journal.get(first["id"]), True
            if not self.is_connected():
                raise AsteriskUnavailable("the PBX is not connected; try again shortly")
            if limit and self.engine.active_for_agent(req.agent) >= limit:
                raise AgentBusy("the agent already has an active call",
                                {"agent": req.agent, "max_active_calls": limit})
            check_call_caps(self.engine, self.config.limits, caller.name)
            call_id = new_call_id()
            if idempotency_key:
                self._placing[key] = (call_id, request_hash)
            try:
                call = await self.engine.start_rest_call(req, clid, call_id=call_id, token_name=caller.name,
                                                         idempotency_key=idempotency_key,
                                                         request_hash=request_hash,
                                                         status_callback=callback)
            finally:
                if self._placing.get(key, ("",))[0] == call_id:
                    del self._placing[key]  # committed now (or failed): the journal knows
            return call.to_dict(), False

        try:
            result = self._run(place())
        except BaseException:
            self.picker.release(choice)
            raise
        if result[1]:
            self.picker.release(choice)   # a replay: nothing was dialled with it
        return result

    def clid_pools(self) -> list[dict]:
        """The CLID pools, their policies and each number's use and health (SPEC §12,
        ``GET /click2dial/clids``); see :meth:`ClidPicker.report`."""
        return self.picker.report()

    def get_call(self, call_id: str, caller: Caller = Caller()) -> dict:
        """The call resource of ``call_id``; raises ``NoSuchCall``.

        A token limited to some agents sees only their calls; any other call
        is "no such call" to it (its existence is not revealed).
        """
        found = None
        if _plausible_id(call_id):
            self._settled()
            found = self.journal.get(call_id)
        if found is None or (caller.agents and found["agent"] not in caller.agents):
            raise NoSuchCall("no call with this id", {"id": ascii(call_id[:64])[1:-1]})
        return found

    def call_history(self, call_id: str, caller: Caller = Caller()) -> dict:
        """The states a call went through, oldest first, from the journal.

        Returns ``{"id": str, "states": [{"state": str, "at": ISO 8601 UTC,
        "reason": str | None}, ...]}``: one entry per change of state (the
        journal's event rows with repeats of one state folded into the
        first), ``reason`` only on ``ended``. A client that polls can show
        every state even when one lasted less than its polling interval
        (``platforma-c2d call``). Raises ``NoSuchCall`` like :meth:`get_call`.
        """
        found = self.get_call(call_id, caller)
        states: list[dict] = []
        for ev in self.journal.events(found["id"]):
            if states and states[-1]["state"] == ev["state"]:
                continue
            states.append({"state": ev["state"], "at": ev["at"],
                           "reason": ev["reason"] if ev["state"] == State.ENDED.value else None})
        return {"id": found["id"], "states": states}

    def list_calls(self, query: ListQuery = ListQuery(),
                   caller: Caller = Caller()) -> tuple[list[dict], int, bool]:
        """Calls matching ``query``, newest first, only the caller's agents' when
        its token is limited; returns (page, total matching, whether more follow).
        The total is counted up to ``contract.TOTAL_COUNT_MAX`` + 1 only: more
        than the maximum means "at least that many".

        Raises ``AsteriskUnavailable`` when the journal does not catch up in time.
        """
        self._settled()
        page, total = self.journal.list(
            states=query.states, origins=query.origins, agent=query.agent, call_ref=query.call_ref,
            created_after=query.created_after, created_before=query.created_before,
            updated_after=query.updated_after, agents=caller.agents, limit=query.limit + 1,
            before=query.before, count_up_to=TOTAL_COUNT_MAX + 1)
        return page[:query.limit], total, len(page) > query.limit

    def cancel_call(self, call_id: str, caller: Caller = Caller()) -> dict:
        """Hang up every leg of a call (reason ``cancelled``); returns the call resource.

        An ended call is returned unchanged. Raises ``NoSuchCall`` (also for
        a call of an agent the caller's token is not for);
        ``AsteriskUnavailable`` (503) for an open call while ARI is not
        connected, or while the call is being taken back after a
        (re)connect — nothing is changed then. A FastAGI call is hung up
        through ARI (see :meth:`_cancel_agi_call`).
        """
        found = self.get_call(call_id, caller)
        log.info("cancel requested", extra={"call_id": call_id, "fields": {"token": caller.name}})
        if found["origin"] == Origin.AGI.value:
            if found["state"] != State.ENDED.value:
                self._cancel_agi_call(call_id)
            return self.get_call(call_id, caller)

        if found["state"] == State.ENDED.value:
            return found
        if not self.is_connected():
            # Nothing could be hung up now: say so, rather than answer with a
            # call that stays up (SPEC §2: 503 asterisk-unavailable).
            raise AsteriskUnavailable("the PBX is not connected; try again shortly")

        async def cancel() -> bool:
            call = self.engine.calls.get(call_id)
            if call is None:
                return False
            await self.engine.cancel(call)
            return True

        if not self._run(cancel()):
            current = self.get_call(call_id, caller)
            if current["state"] != State.ENDED.value:
                # Journalled open, not held: a call of an earlier run being
                # taken back right after a (re)connect.
                raise AsteriskUnavailable("the call is being taken back after a reconnect; try again shortly")
            return current
        return self.get_call(call_id, caller)

    def _cancel_agi_call(self, call_id: str, wait_s: float = 3.0) -> None:
        """Hang up a FastAGI call's channel; its hangup handler journals it ``cancelled``.

        The dialplan, not the service, owns an AGI call: the outcome
        (``cancelled``) is noted in the journal, the channel (its ARI id is
        journalled) is hung up, and the ``click2dial-hangup`` handler ends
        the call with that reason and its talk time. If the handler has not
        within ``wait_s`` seconds, the call is ended here. Raises
        ``NotCancellable`` (409) for a call journalled without its channel,
        ``AsteriskUnavailable`` (503) while ARI is down.
        """
        row = self.journal.get_row(call_id)
        if not row or row["state"] == State.ENDED.value:
            return
        if not row["agent_channel"]:
            raise NotCancellable("this FastAGI call was journalled without its channel; "
                                 "it cannot be hung up from here", {"id": call_id})
        if not self.is_connected():
            raise AsteriskUnavailable("the PBX is not connected; try again shortly")
        if not self.journal.mark_outcome(call_id, Reason.CANCELLED.value, "cancel requested through the API",
                                         by=EndedBy.API.value):
            return  # ended meanwhile
        try:
            self._run(self.engine.ari.hangup(row["agent_channel"]))
        except (AriError, AsteriskUnavailable) as exc:
            # Not hung up: the call goes on, and must not end "cancelled".
            self.journal.mark_outcome(call_id, None, "cancel failed: the channel could not be hung up")
            raise AsteriskUnavailable("Asterisk did not hang the call up; try again shortly") from exc
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.journal.get_row(call_id)["state"] == State.ENDED.value:
                return
            time.sleep(0.05)
        call = call_from_row(self.journal.get_row(call_id), {})
        call.end(Reason.CANCELLED, EndedBy.API)
        self.journal.end_if_open(call, "cancelled through the API; the hangup handler did not report")

    def health(self) -> dict:
        """``{"status": "ok"|"degraded", "ari_connected": bool, "store_writable": bool}``, and
        ``"webhooks"``: the delivery backlog (``WebhookDelivery.health``; it does not make
        the service degraded: calls go on while a receiver is away)."""
        ari, store = bool(self.is_connected()), self.journal.writable()
        out = {"status": "ok" if ari and store else "degraded",
               "ari_connected": ari, "store_writable": store}
        if self.webhooks is not None:
            try:
                out["webhooks"] = self.webhooks.health()
            except Exception:  # noqa: BLE001 - the store's own state is reported above
                out["webhooks"] = None
        return out


def _plausible_id(call_id: str) -> bool:
    return len(call_id) == 32 and all(c in "0123456789abcdef" for c in call_id)


__all__ = ["CallService", "Caller", "C2DError"]


def check_call_caps(engine, limits, token_name: str) -> None:
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
