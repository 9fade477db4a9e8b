"""The call service: what the HTTP layer calls (SPEC §2), from any thread.

Validation (SPEC §1), policy and limits run here; anything that touches call
state is handed to the engine's event loop and awaited, so the HTTP threads
never share state with the telephony thread (docs/architecture.md). Reads go
straight to the journal. Raises ``C2DError`` subclasses, never HTTP objects.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime

from platforma_c2d import rules
from platforma_c2d.calls.agi_follower import cancel_agi_call
from platforma_c2d.calls.engine import CallEngine
from platforma_c2d.calls.errors import (AsteriskUnavailable, C2DError, Forbidden, InvalidRequest, NoSuchCall,
                                        NotCancellable)
from platforma_c2d.calls.model import Origin, State, new_call_id
from platforma_c2d.calls.placing import PlaceRequest, Placer, claim_key, release_key
from platforma_c2d.calls.policy import Policy
from platforma_c2d.clid.picker import ClidPicker
from platforma_c2d.config import Config
from platforma_c2d.contract import TOTAL_COUNT_MAX
from platforma_c2d.store.journal import Journal

log = logging.getLogger("platforma_c2d.service")


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
    """Place, read, list and cancel calls, from the HTTP threads (decision 0002).

    Holds no call state: what touches calls runs on the telephony thread
    (``engine``, the :class:`Placer`, the AGI cancel), handed over by
    :meth:`_run`; reads go to the journal.

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
        self.placer = Placer(engine, journal, config.limits, is_connected)

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
    def place_call(self, request: PlaceRequest, caller: Caller = Caller(),
                   idempotency_key: str | None = None) -> tuple[dict, bool]:
        """Place a REST call; returns (call resource, replayed).

        ``request``: the body as the HTTP layer loaded it
        (:func:`~platforma_c2d.calls.placing.load_place_request`).
        ``replayed`` is True when the same ``idempotency_key`` and body were
        seen within the window: the first call is returned and nothing is
        dialled. Raises ``Forbidden``/``ClidNotAllowed``/``DestinationNotAllowed``
        (403), ``InvalidRequest`` (400, no CLID can be chosen), ``AgentBusy``
        (409), ``IdempotencyConflict`` (422), ``TooManyCalls`` (429,
        :func:`~platforma_c2d.calls.placing.check_call_caps`), ``AsteriskUnavailable`` (503).
        """
        req = request.call
        if caller.agents and req.agent not in caller.agents:
            raise Forbidden("this token may not place calls for this agent",
                            {"fields": {"agent": "this token may not place calls for this agent"}},
                            hint=f"the token's [[auth.token]] agents do not include {req.agent}")
        self.policy.check(req)
        if not self.is_connected() and not idempotency_key:
            # Fail fast; with a key, a replay of a placed call is still answered.
            raise AsteriskUnavailable("the PBX is not connected; try again shortly")
        try:
            # In the store, from this thread: the event loop runs no SQL (decision 0008).
            choice = self.picker.choose(req, caller.name)
        except rules.RuleError as exc:
            raise InvalidRequest("no caller ID can be chosen", {"fields": {exc.field: exc.message}}) from None
        call_id = new_call_id()
        if idempotency_key:
            try:   # in the store, before anything is dialled: one call per key cluster-wide
                first = claim_key(self.journal, self.config.limits, caller.name, idempotency_key, call_id,
                                  request.request_hash, self._timeout)
            except BaseException:
                self.picker.release(choice)
                raise
            if first is not None:
                self.picker.release(choice)   # a replay: nothing is dialled with it
                return first, True
        try:
            result = self._run(self.placer.place(request, choice.clid, caller.name, idempotency_key, call_id))
        except BaseException:
            self.picker.release(choice)
            if idempotency_key:
                release_key(self.journal, caller.name, idempotency_key, call_id)
            raise
        if result[1]:
            self.picker.release(choice)   # a replay: nothing was dialled with it
            if idempotency_key:   # of a call journalled before keys were claimed
                release_key(self.journal, caller.name, idempotency_key, call_id)
        return result

    def clid_pools(self, caller: Caller = Caller()) -> list[dict]:
        """The CLID pools, their policies and each number's use and health (SPEC §12,
        ``GET /click2dial/clids``); see :meth:`ClidPicker.report`. A token limited
        to some agents sees only the pools its agents draw from."""
        return self.picker.report(agents=caller.agents, token=caller.name)

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

    def _cancel_agi_call(self, call_id: str) -> None:
        """Hang up a FastAGI call's channel; its hangup handler journals it ``cancelled``
        (:func:`~platforma_c2d.calls.agi_follower.cancel_agi_call`, on the telephony thread).

        Raises ``NotCancellable`` (409) for a call journalled without its
        channel, ``AsteriskUnavailable`` (503) while ARI is down.
        """
        row = self.journal.get_row(call_id)
        if not row or row["state"] == State.ENDED.value:
            return
        if not row["agent_channel"]:
            raise NotCancellable("this FastAGI call was journalled without its channel; "
                                 "it cannot be hung up from here", {"id": call_id})
        if not self.is_connected():
            raise AsteriskUnavailable("the PBX is not connected; try again shortly")
        self._run(cancel_agi_call(self.journal, self.engine.ari, row))

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
