"""The service follows AGI calls to their end (SPEC §6: an AGI call is never left open).

The ``click2dial`` AGI script subscribes the Stasis app to each accepted
call's channel (``platforma_c2d.agi.follow``), which stays in the
administrator's dialplan. Asterisk then sends the app that channel's
``Dial`` events (its ``dialstatus``) and its ``ChannelDestroyed``; on the
latter the call is ended in the journal with the outcome the hangup script
would have given (:func:`platforma_c2d.calls.dialstatus.final_outcome`) — only if
it is still open, so our own hangup handler, where the dialplan has it,
still wins.

After every (re)connect, :meth:`AgiFollower.reconcile` ends the open AGI
calls whose channel is gone (their events were lost) and subscribes again
to those still up.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from platforma_c2d.ari.client import AriClient, AriError
from platforma_c2d.ari.records import AriEvent, ChannelDestroyed, ChannelHangupRequest, Dial
from platforma_c2d.calls.dialstatus import final_outcome
from platforma_c2d.calls.errors import AsteriskUnavailable
from platforma_c2d.calls.model import Call, EndedBy, Leg, Origin, Reason, State
from platforma_c2d.calls.recovery import call_from_row
from platforma_c2d.store.journal import Journal

if TYPE_CHECKING:   # the engine is only passed through
    from platforma_c2d.calls.engine import CallEngine

log = logging.getLogger("platforma_c2d.agi_follower")

#: Channels followed at most at once (a bound: entries of lost channels go).
MAX_FOLLOWED = 100_000


class AgiFollower:
    """Ends AGI calls from the ARI events of their channels.

    ``engine``: the call engine, whose ``journal`` (shared with the AGI
    server) is read and written; ``ari``: the REST client of the app. Runs on the service's event loop; journal
    writes go to a worker thread.
    """

    def __init__(self, engine: "CallEngine", ari: AriClient):
        self.engine, self.ari = engine, ari
        #: caller channel id -> (last DIALSTATUS, when the callee answered)
        self._dial: dict[str, tuple[str, datetime | None]] = {}
        #: caller channels whose own side asked to hang up (not the dialplan's Hangup())
        self._hung_up_by_caller: set[str] = set()

    @property
    def journal(self) -> Journal:
        """The engine's call journal."""
        return self.engine.journal


    def on_event(self, ev: AriEvent) -> asyncio.Future | None:
        """Note a ``Dial`` status or a hang-up request; on ``ChannelDestroyed``
        return the task that ends the call (``None`` otherwise).

        Only events of channels that are no leg of the engine's calls come
        here (the Stasis app routes them).
        """
        if isinstance(ev, Dial):
            caller, status = ev.caller.id, ev.dialstatus
            if caller and status:
                if len(self._dial) >= MAX_FOLLOWED:
                    self._dial.clear()
                answered = datetime.now(timezone.utc) if status == "ANSWER" else None
                self._dial[caller] = (status, answered)
            return None
        chan_id = ev.channel.id
        if not chan_id:
            return None
        if isinstance(ev, ChannelHangupRequest):
            # Asterisk marks the dialplan's own Hangup() (and the end of a
            # bridge) "soft"; a request from the phone's side is not.
            if not ev.soft and chan_id in self._dial:
                self._hung_up_by_caller.add(chan_id)
            return None
        if not isinstance(ev, ChannelDestroyed):
            return None
        status, answered = self._dial.pop(chan_id, ("", None))
        by_caller = chan_id in self._hung_up_by_caller
        self._hung_up_by_caller.discard(chan_id)
        name = ev.channel.name
        return asyncio.ensure_future(asyncio.to_thread(
            self.end, chan_id, status, "" if ev.cause is None else str(ev.cause),
            name if by_caller else ("peer" if status == "ANSWER" else ""), name, answered))

    def end(self, channel_id: str, dialstatus: str, hangupcause: str, hangup_source: str,
            own_channel: str, answered_at: datetime | None = None) -> Call | None:
        """End the open AGI call whose agent channel is ``channel_id`` (blocking).

        ``dialstatus``/``hangupcause``: as Dial() and Asterisk left them
        (``""`` when unknown); ``hangup_source``/``own_channel``: channel
        names, as for :func:`~platforma_c2d.calls.dialstatus.ended_by_for_dial`;
        ``answered_at``: when the callee answered (UTC), or None. Returns
        the ended call, or None when no open AGI call has that channel or
        another writer (the hangup script) ended it first.
        """
        row = self.journal.find_by_channel(channel_id)
        if row is None or row["origin"] != Origin.AGI.value or row["state"] == "ended":
            return None
        reason, by, noted = final_outcome(row, dialstatus, hangupcause, hangup_source, own_channel)
        call = Call.from_row(row)
        call.agent_leg = Leg("agent", channel_id, started=True, up=True)
        call.end(reason, by)
        if answered_at is not None and (reason is Reason.COMPLETED or (noted and dialstatus == "ANSWER")):
            call.answered_at = min(answered_at, call.ended_at)
        detail = (f"channel gone: DIALSTATUS={dialstatus[:16] or '-'} "
                  f"HANGUPCAUSE={hangupcause[:4] or '-'}")
        if not self.journal.end_if_open(call, detail):
            return None
        log.info("AGI call ended (followed by the service): %s", reason.value,
                 extra={"call_id": call.id, "call_ref": call.call_ref, "origin": "agi"})
        return call

    async def reconcile(self, rows: list[dict], channels: dict[str, dict]) -> None:
        """After a (re)connect: each open AGI call of ``rows`` (journal rows)
        whose channel is not in ``channels`` (``GET /channels`` by id) is
        ended (``failed``, or the outcome noted before); the app subscribes
        again to the others. One at a time, never a burst."""
        for row in rows:
            chan_id = row.get("agent_channel") or ""
            if row["origin"] != Origin.AGI.value or not chan_id:
                continue
            if chan_id in channels:
                live = channels[chan_id]
                if live.get("state") == "Up" and (live.get("dialplan") or {}).get("app_name") == "Dial":
                    # Dial() answers the caller when the callee answers: its ANSWER
                    # came while the app was away (when exactly is not known).
                    self._dial.setdefault(chan_id, ("ANSWER", None))
                try:
                    await self.ari.subscribe(f"channel:{chan_id}")
                    continue
                except AriError as exc:
                    if exc.status != 404 and exc.status != 422:
                        log.warning("cannot follow AGI channel %s: %s", chan_id, exc)
                        continue
                    # the channel went in the meantime: end the call below
            await asyncio.to_thread(self.end, chan_id, "", "", "", "")


async def cancel_agi_call(journal: Journal, ari: AriClient, row: dict, wait_s: float = 3.0) -> None:
    """``DELETE`` of an open FastAGI call, on the telephony thread: its hangup handler ends it ``cancelled``.

    The dialplan, not the service, owns an AGI call: the outcome
    (``cancelled``, by ``api``) is noted in the journal, the channel
    (``row["agent_channel"]``, its ARI id) is hung up, and the
    ``click2dial-hangup`` handler ends the call with that reason and its
    talk time. If the handler has not within ``wait_s`` seconds, the call is
    ended here. Journal reads and writes run off the loop. Raises
    ``AsteriskUnavailable`` (503) when Asterisk does not hang the channel
    up (the outcome noted is taken back: the call goes on).
    """
    call_id = row["id"]
    if not await asyncio.to_thread(journal.mark_outcome, call_id, Reason.CANCELLED.value,
                                   "cancel requested through the API", by=EndedBy.API.value):
        return  # ended meanwhile
    try:
        await ari.hangup(row["agent_channel"])
    except AriError as exc:
        # Not hung up: the call goes on, and must not end "cancelled".
        await asyncio.to_thread(journal.mark_outcome, call_id, None,
                                "cancel failed: the channel could not be hung up")
        raise AsteriskUnavailable("Asterisk did not hang the call up; try again shortly") from exc
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while loop.time() < deadline:
        if (await asyncio.to_thread(journal.get_row, call_id))["state"] == State.ENDED.value:
            return
        await asyncio.sleep(0.05)
    call = call_from_row(await asyncio.to_thread(journal.get_row, call_id), {})
    call.end(Reason.CANCELLED, EndedBy.API)
    await asyncio.to_thread(journal.end_if_open, call,
                            "cancelled through the API; the hangup handler did not report")
