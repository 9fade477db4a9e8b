"""Reconciliation after every (re)connect of the ARI socket (SPEC §9, field report C08).

Asterisk does not queue events while the app is away, so after a connect
the service compares three things — its journal, the calls it holds, and
the channels and bridges Asterisk has now — and makes them agree:

* journalled calls of an earlier run (not in memory) are rebuilt and handed
  to ``CallEngine.resume`` (go on, or end with the right reason);
* calls whose legs vanished while the socket was down are ended (their
  hangup events were lost);
* open AGI calls (``origin: agi``) are ended when their channel is gone,
  else followed again (``calls.agi_follower``);
* a browser's channel waiting in the app that no call holds is a WebRTC
  call whose StasisStart was handled by no run (the service died before
  its first record reached the disk): it is taken as a new call now, or
  hung up if the journal shows it ended (refused before the crash);
* channels and bridges named ``c2d-`` that belong to no live call are torn
  down one at a time, never in a parallel burst (C08).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING

from platforma_c2d.ari.client import AriClient
from platforma_c2d.calls import causes
from platforma_c2d.calls.engine import CallEngine
from platforma_c2d.calls.legs import callee_channel_id, is_ours, leg_of_dial_half
from platforma_c2d.calls.model import Call, EndedBy, Leg, Origin, Reason, State

if TYPE_CHECKING:   # the Stasis app imports the engine too; only its type is needed here
    from platforma_c2d.calls.stasis import StasisApp

log = logging.getLogger("platforma_c2d.recovery")


def call_from_row(row: dict, channels: dict[str, dict]) -> Call:
    """Rebuild a journalled call and its legs against Asterisk's channels now.

    ``row``: a whole ``calls`` row (``Journal.unfinished``); ``channels``:
    ``GET /channels`` by id. A leg whose channel is missing is ``gone``; one
    that is Up or in Stasis is ``started``. The callee leg id is derived
    when the row does not have it yet (requested just before a crash).
    """
    call = Call.from_row(row)
    if call.state is not State.ENDED and row["reason"]:
        call.pending_reason = Reason(row["reason"])  # the outcome known before the restart
        call.pending_by = EndedBy(row["ended_by"]) if row.get("ended_by") else None
    callee_id = row["callee_channel"] or callee_channel_id(call.id)
    for role, chan_id in (("agent", row["agent_channel"]), ("callee", callee_id)):
        if not chan_id or (role == "callee" and not row["callee_channel"] and chan_id not in channels):
            continue
        live = channels.get(chan_id)
        in_app = bool(live and (live["state"] == "Up"
                                or (live.get("dialplan") or {}).get("app_name") == "Stasis"))
        # A live leg not answered yet was dialled before the restart: whether
        # it rang (180, or 183 that no channel state shows) is not known, so
        # it is taken to ring — a timeout then reads "no answer", as before.
        leg = Leg(role, chan_id, started=in_app, up=bool(live and live["state"] == "Up"),
                  gone=live is None, ringing=live is not None)
        if role == "agent":
            call.agent_leg = leg
        else:
            call.callee_leg = leg
    return call


async def reconcile(engine: CallEngine, ari: AriClient, stasis: "StasisApp | None" = None) -> None:
    """Make the engine, the journal and Asterisk agree (see the module docstring).

    ``stasis``: the app that takes browsers' calls (header path); without
    it, browser channels waiting in the app are left alone.
    """
    channels = {c["id"]: c for c in await ari.channels()}
    bridges = {b["id"]: b for b in await ari.bridges()}
    await engine.flush()  # a call ended a moment ago must not read as unfinished
    open_rows = engine.journal.unfinished()
    for row in open_rows:
        if row["id"] in engine.calls or row["origin"] == Origin.AGI.value:
            continue  # AGI calls are routed by the dialplan: followed, not resumed
        call = call_from_row(row, channels)
        agent = channels.get(row["agent_channel"] or "")
        if agent is not None and await engine.native.resume(call, agent):
            continue  # bridged by Asterisk's Dial(): followed again (calls.native)
        await engine.resume(call, bridges)
    if stasis is not None:   # channel gone: end the call; still up: follow it again
        await stasis.agi_follower.reconcile(open_rows, channels)
    await engine.native.follow_again(channels)
    for call in list(engine.calls.values()):
        for leg in call.legs():
            if not leg.gone and leg.started and leg.channel_id not in channels:
                await engine.on_gone(call, leg, None)
            elif leg.channel_id in channels and not leg.acted and \
                    channels[leg.channel_id].get("state") == "Up":
                await engine.on_up(call, leg)
            elif leg.channel_id in channels:
                # Not answered yet: whether its 180 or 183 came while the
                # socket was down is not known (a 183 leaves no channel
                # state), so it is taken to ring — as after a restart.
                leg.ringing = True
    if stasis is not None:
        await _adopt_waiting_browsers(engine, ari, stasis, channels)
    live_channels = set(engine.by_channel)
    live_bridges = {c.bridge_id for c in engine.calls.values() if c.bridge_id}
    for chan_id in channels:
        if is_ours(chan_id) and (leg_of_dial_half(chan_id) or chan_id) not in live_channels:
            await ari.hangup(chan_id)
    for bridge_id in bridges:
        if is_ours(bridge_id) and bridge_id not in live_bridges:
            await ari.destroy_bridge(bridge_id)


async def _adopt_waiting_browsers(engine: CallEngine, ari: AriClient, stasis: "StasisApp",
                                  channels: dict[str, dict]) -> None:
    """Browser channels in our app that no call holds: take them now, one at a time.

    A channel whose StasisStart is being handled right now (a reconnect
    while its headers were being read) is left to that handler: taking it
    here too would dial the customer twice.
    """
    for chan_id, chan in channels.items():
        if is_ours(chan_id) or chan_id in engine.by_channel or stasis.handling(chan_id):
            continue
        plan = chan.get("dialplan") or {}
        app, *args = (plan.get("app_data") or "").split(",")
        if plan.get("app_name") != "Stasis" or app.strip() != ari.app:
            continue
        try:
            # The journal may be large and this query has no index: off the loop.
            row = await asyncio.to_thread(engine.journal.find_by_channel, chan_id)
            if stasis.handling(chan_id) or chan_id in engine.by_channel:
                continue   # its StasisStart came while we looked
            if row is None:
                await stasis.adopt(chan, args)
            elif row["state"] == State.ENDED.value:
                events = await asyncio.to_thread(engine.journal.events, row["id"])
                await ari.hangup(chan_id, reason_code=refusal_cause(row, events[-1]["detail"] if events else ""))
        except Exception:  # noqa: BLE001 - one channel must not stop the others or the clean-up
            log.exception("cannot take the browser channel %s found in the app", chan_id)


_CAUSE_IN_DETAIL = re.compile(r"^refused \(cause (\d{1,3})\)")


def refusal_cause(row: dict, detail: str) -> int:
    """The hangup cause of a browser's call that ended before its phone was told.

    ``row``: its journal row; ``detail``: its last journal event's detail.
    A refusal journals its cause (``refused (cause 28): ...``: 484 for a
    bad callee, 403 otherwise); any other end, the cause of its outcome
    (``causes.sip_cause_for``).
    """
    found = _CAUSE_IN_DETAIL.match(detail or "")
    if found:
        return int(found.group(1))
    reason = Reason(row["reason"]) if row["reason"] else Reason.FAILED
    return causes.sip_cause_for(reason)
