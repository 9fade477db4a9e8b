"""The Stasis app: routes ARI events to the engine and takes WebRTC calls in.

(Reconciliation after a (re)connect is ``calls.recovery``.)

A channel that enters the app is one of ours when its id is one we chose
(registered before the request, field report C01). Any other channel that
enters the app was sent by the dialplan — a browser phone calling
``sip:<callee>@<pbx>`` with X-Platforma headers (SPEC §4) — whatever the
``Stasis()`` arguments are.
"""

from __future__ import annotations

import asyncio
import logging
import re

from platforma_c2d import rules
from platforma_c2d.ari import records
from platforma_c2d.ari.client import AriClient, AriError
from platforma_c2d.ari.records import AriEvent, Channel
from platforma_c2d.calls import causes, sipheaders
from platforma_c2d.calls.agent_limit import agent_is_busy
from platforma_c2d.calls.agi_follower import AgiFollower
from platforma_c2d.calls.engine import CallEngine
from platforma_c2d.calls.legs import is_ours, leg_of_dial_half
from platforma_c2d.calls.errors import C2DError
from platforma_c2d.calls.model import Call, Leg, Origin, new_call_id
from platforma_c2d.calls.policy import Policy
from platforma_c2d.calls.transfers import transfer_of
from platforma_c2d.clid.picker import ClidPicker

log = logging.getLogger("platforma_c2d.stasis")


#: The UserEvent our trunk-leg context sends after Dial() (ADR 0014, extensions.conf).
LEG_USEREVENT = "c2d-leg"
_SIP_CODE = re.compile(r"\b([1-6][0-9][0-9])\b")


class StasisApp:
    """Event router of the Click2Dial Stasis app.

    ``engine``: the call engine; ``ari``: REST client; ``picker``: chooses
    the CLID of header calls (SPEC §12); ``policy``: allowed CLIDs and
    destinations; ``max_per_agent``: active calls per agent (0: no limit);
    ``max_active_calls``: calls up at once in the service, REST and browser
    calls alike (``[limits] max_active_calls``; 0: no cap).
    """

    def __init__(self, engine: CallEngine, ari: AriClient, picker: ClidPicker, policy: Policy,
                 max_per_agent: int = 0, max_active_calls: int = 0):
        self.engine, self.ari, self.picker, self.policy = engine, ari, picker, policy
        self.max_per_agent, self.max_active_calls = max_per_agent, max_active_calls
        self._tails: dict[str, asyncio.Task] = {}
        #: browser channels taken by ``adopt`` whose StasisStart may still be queued
        self._adopted: set[str] = set()
        #: ends AGI calls whose channels the AGI server handed to the app (SPEC §6)
        self.agi_follower = AgiFollower(engine, ari)

    async def filter_events(self) -> None:
        """``PUT /applications/{app}/eventFilter``: only ``EVENT_TYPES`` (after every connect).

        An Asterisk without event filters keeps sending everything; the
        router ignores what it does not handle, so that is only slower.
        """
        for attempt in range(20):
            try:
                await self.ari.set_event_filter(list(EVENT_TYPES))
                return
            except AriError as exc:
                # Right after the socket opens the app may not be registered yet.
                if exc.status != 404 or attempt == 19:
                    log.warning("cannot set the ARI event filter: %s", exc)
                    return
                await asyncio.sleep(0.05)

    # ------------------------------------------------------------------
    async def dispatch(self, event: dict) -> None:
        """Parse one ARI event (a type of ``ROUTES``; any other is dropped here) and
        hand it to :meth:`handle` without waiting for earlier calls' work.

        Events of one call (keyed by its agent leg's channel id, which is
        also the channel of a browser call before it is registered) are
        handled strictly in arrival order, one after the other; events of
        different calls run concurrently, so one call's ARI round trips do
        not delay every other call. Everything still runs on the one event
        loop (docs/decisions/0002).
        """
        record = records.parse(event, RECORDS)
        if record is None:
            return
        if isinstance(record, records.Dial):
            self._trunk_dialled(record)   # at once: the pacer's clock is the wire's
        key = self._key(record)
        prev = self._tails.get(key)
        task = asyncio.get_running_loop().create_task(self._after(prev, record))
        self._tails[key] = task
        task.add_done_callback(lambda t, k=key: self._done(k, t))

    def _trunk_dialled(self, ev: records.Dial) -> None:
        """A ``Dial`` of a leg towards its endpoint: the trunk pacer counts its next
        slot from now when the leg was a paced one (SPEC §3.8). The leg dials from the
        ``;2`` of its Local channel (ADR 0014), or is the dialled channel itself when
        originated straight to the trunk (a ``Local/`` peer is the Local ``;1``, not yet
        the trunk)."""
        owner = self.engine.by_channel.get(ev.caller_id) if ev.caller_id else None
        if owner is not None and owner.native:
            self.engine.native.dialled(ev)   # the callee dialled by [c2d-native-call]
            return
        leg_id = leg_of_dial_half(ev.caller_id)
        if leg_id is None and is_ours(ev.channel.id) and not ev.channel.name.startswith("Local/"):
            leg_id = ev.channel.id
        if leg_id is not None:
            self.engine.pacer.sent(leg_id)

    def _key(self, ev: AriEvent) -> str:
        if isinstance(ev, records.StasisStart) and ev.replace_channel.id:
            ev = records.StasisStart(channel=ev.replace_channel)   # a transfer: in order with the leg it replaces
        caller = ev.caller_id
        # The dialplan half of a leg's Local channel: in order with the leg's events.
        chan_id = leg_of_dial_half(ev.channel.id) or leg_of_dial_half(caller) or ev.channel.id
        if caller and caller not in self.engine.by_channel and chan_id not in self.engine.by_channel:
            return caller   # a followed AGI channel's Dial: in order with its ChannelDestroyed
        # (a natively bridged call's Dial of the callee: its caller is the agent leg)
        call = self.engine.by_channel.get(chan_id) or (self.engine.by_channel.get(caller) if caller else None)
        return call.agent_leg.channel_id if call is not None and call.agent_leg else chan_id

    async def _after(self, prev: asyncio.Task | None, ev: AriEvent) -> None:
        if prev is not None:
            try:
                await prev
            except Exception:  # noqa: BLE001 - already logged by _done
                pass
        await self.handle(ev)

    def _done(self, key: str, task: asyncio.Task) -> None:
        if self._tails.get(key) is task:
            del self._tails[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("handler failed for an ARI event", exc_info=task.exception())

    async def on_event(self, event: dict) -> None:
        """Handle one JSON ARI event now (parsed; a type not in ``ROUTES`` is ignored)."""
        record = records.parse(event, RECORDS)
        if isinstance(record, records.Dial):
            self._trunk_dialled(record)
        if record is not None:
            await self.handle(record)

    async def handle(self, ev: AriEvent) -> None:
        """Handle one ARI event record now: an event of the dialplan half of a
        leg's Local channel, of a followed AGI channel, or of a channel of
        ours or entering the app, each by its method in ``ROUTES``."""
        chan_id = ev.channel.id
        if not chan_id:
            return
        if leg_of_dial_half(chan_id) or leg_of_dial_half(ev.caller_id):
            await self._on_dial_half(ev)
            return
        if isinstance(ev, records.StasisStart) and ev.replace_channel.id:
            await self._on_replacing(ev)
            return
        if isinstance(ev, records.Dial) and ev.caller_id:
            owner = self.engine.by_channel.get(ev.caller_id)
            if owner is not None and owner.native:
                await self.engine.native.on_dial(owner, ev)   # the callee of [c2d-native-call]
                return
        if self.engine.far_ends.is_followed(chan_id):
            self.engine.far_ends.on_event(ev)   # the channel a leg's Dial() reached
            return
        call = self.engine.by_channel.get(chan_id)
        leg = call.leg_by_channel(chan_id) if call else None
        if call is None and isinstance(ev, (records.Dial, records.ChannelHangupRequest,
                                            records.ChannelDestroyed)):
            ended = self.agi_follower.on_event(ev)   # an AGI channel, or nothing of ours
            if ended is not None:
                await ended
            return
        if leg is None and not isinstance(ev, records.StasisStart):
            return
        await ROUTES[type(ev)](self, ev, call, leg)

    async def _on_stasis_start(self, ev: records.StasisStart, call: Call | None, leg: Leg | None) -> None:
        chan_id = ev.channel.id
        if leg is not None:
            await self.engine.on_stasis_start(call, leg, ev.channel.state)
        elif is_ours(chan_id):
            # A leg of a call that is over (or of an earlier run): never keep it.
            await self.ari.hangup(chan_id)
        elif chan_id in self._adopted:
            self._adopted.discard(chan_id)   # already taken by adopt() after a connect
        else:
            await self.start_header_call(ev.channel, list(ev.args))

    async def _on_stasis_end(self, ev: records.StasisEnd, call: Call, leg: Leg) -> None:
        if leg.role == "agent" and call.origin is not Origin.REST:
            # The browser leg left the app: it hung up.
            await self.engine.on_gone(call, leg, None)

    async def _on_state_change(self, ev: records.ChannelStateChange, call: Call, leg: Leg) -> None:
        if ev.channel.state == "Up":
            await self.engine.on_up(call, leg)
        elif ev.channel.state in ("Ringing", "Ring"):
            await self.engine.on_ringing(call, leg)

    async def _on_destroyed(self, ev: records.ChannelDestroyed, call: Call, leg: Leg) -> None:
        await self.engine.on_gone(call, leg, ev.cause, ev.tech_cause)

    async def _on_hangup_request(self, ev: records.ChannelHangupRequest, call: Call, leg: Leg) -> None:
        # A soft hangup's "cause" is Asterisk's reason for it (1: a channel
        # driver's, e.g. an RTP timeout; 32: an ARI DELETE), not a Q.850 cause:
        # the cause is then the one the channel is destroyed with.
        await self.engine.on_hangup_request(call, leg, None if ev.soft else ev.cause, ev.tech_cause)

    async def _on_dial(self, ev: records.Dial, call: Call, leg: Leg) -> None:
        if ev.dialstatus:
            await self.engine.on_dial_status(call, leg, ev.dialstatus)

    async def _on_dtmf(self, ev: records.ChannelDtmfReceived, call: Call, leg: Leg) -> None:
        await self.engine.on_dtmf(call, leg, ev.digit)

    async def _on_userevent(self, ev: records.ChannelUserevent, call: Call, leg: Leg) -> None:
        """A natively bridged call's report after its Dial() (``calls.native``); otherwise
        only the dialplan half's UserEvent counts (:meth:`_on_dial_half`)."""
        if call.native and leg.role == "agent":
            await self.engine.native.on_userevent(call, ev)

    async def _on_dial_half(self, ev: AriEvent) -> None:
        """An event of ``;2`` of a leg's Local channel (ADR 0014). Its report of
        the trunk's final SIP code counts (``tech_cause`` does not cross the
        Local channel), and its ``Dial()``'s answer: the channel that answered is
        followed for its own hangup cause (``calls.far_ends``); ``;1``, the leg
        itself, says the rest."""
        if isinstance(ev, records.StasisStart):
            # A leg's dialplan half sent back to the app: a phone's blind transfer
            # of a REST call to a number the phone's context hands to Click2Dial.
            # Not supported: never left waiting in the app (the leg, and the call, end).
            log.info("transfer of a leg's dialplan half %s to Click2Dial refused", ev.channel.id)
            await self.ari.hangup(ev.channel.id, reason_code=causes.CAUSE_REJECTED)
            return
        if isinstance(ev, records.Dial) and ev.dialstatus == "ANSWER":
            leg_id = leg_of_dial_half(ev.caller_id)
            call = self.engine.by_channel.get(leg_id or "")
            leg = call.leg_by_channel(leg_id) if call else None
            if leg is not None:
                self.engine.far_ends.follow(call, leg, ev.channel.id, ev.channel.name)
            return
        if not isinstance(ev, records.ChannelUserevent) or ev.eventname != LEG_USEREVENT:
            return
        leg_id = leg_of_dial_half(ev.channel.id)
        call = self.engine.by_channel.get(leg_id or "")
        leg = call.leg_by_channel(leg_id) if call else None
        found = _SIP_CODE.search(str(ev.userevent.get("sip_code", "")))
        # A provisional response (100, 180, 183) is no final answer: the trunk's
        # last recorded one after a 302 Dial() would not follow, for instance.
        if leg is not None and found and int(found.group(1)) >= 200:
            await self.engine.on_hangup_request(call, leg, None, int(found.group(1)))

    async def _on_replacing(self, ev: records.StasisStart) -> None:
        """A channel entered the app in the place of another in a bridge of ours
        (``replace_channel``): a transfer's Local channel, never a new call. It takes
        the place of the leg it replaced (``CallEngine.on_leg_replaced``); one that
        replaced a channel of no live call is hung up, journalling nothing."""
        old = ev.replace_channel.id
        call = self.engine.by_channel.get(old)
        leg = call.leg_by_channel(old) if call else None
        if leg is None:
            log.info("channel %s replaced %s, of no call: hung up", ev.channel.id, old)
            await self.ari.hangup(ev.channel.id)
            return
        await self.engine.on_leg_replaced(call, leg, ev.channel)

    # ------------------------------------------------------------------
    # WebRTC / SIP header calls (SPEC §4)
    # ------------------------------------------------------------------
    def handling(self, channel_id: str) -> bool:
        """Whether an event of ``channel_id`` is being handled now (or waits its turn)."""
        return channel_id in self._tails

    async def adopt(self, channel: dict, args: list) -> Call | None:
        """Take a browser's channel found waiting in the app after a (re)connect.

        ``channel``: its ARI channel object (``GET /channels``). Its
        StasisStart was handled by no run (the service died before the
        call's first record was on disk), or is still queued on the new
        socket — that one is then skipped. Same as :meth:`start_header_call`.
        """
        if len(self._adopted) > 10_000:   # never grows without bound (each is taken once)
            self._adopted.clear()
        self._adopted.add(channel["id"])
        log.info("taking a browser call found waiting in the app (channel %s)", channel["id"])
        return await self.start_header_call(Channel.from_json(channel), args)

    async def start_header_call(self, channel: Channel, args: list) -> Call | None:
        """Take a call the dialplan handed to the app; returns the Call, or None if refused.

        Reads X-Platforma-Outbound-ID / X-Platforma-Call-Ref once (absent
        header = not given, C11), applies SPEC §1 with the agent taken from
        the calling endpoint, checks the policy, journals the call
        (``origin: webrtc``), sends 180 and dials the callee. A refused
        call is journalled as ended/rejected and hung up with 484 (bad
        callee) or 403 (bad or unauthorised outbound_id / call_ref).
        """
        chan_id = channel.id
        agent = sipheaders.agent_from_channel_name(channel.name)
        callee = channel.exten
        try:
            if channel.name.startswith("PJSIP/"):
                # A header given twice is refused (a proxy that checked the other
                # copy must not be bypassed; REST refuses duplicate keys too), and
                # so is one too long to read whole (SPEC §4).
                (outbound_id, out_problem), (call_ref, ref_problem) = await sipheaders.read(
                    self.ari, chan_id, (sipheaders.HEADER_OUTBOUND_ID, sipheaders.HEADER_CALL_REF))
                problems = {field: problem for field, problem in (
                    ("outbound_id", out_problem), ("call_ref", ref_problem)) if problem}
            else:
                # A Local channel (a transfer, a dialplan of the PBX's own) has no
                # SIP headers and is no agent's phone: refused without reading any
                # (each read would be an ERROR line in Asterisk's log).
                if await transfer_of(self.ari, chan_id):
                    # The far half of a phone's transfer to a number that Click2Dial
                    # would dial: not a call of its own (no journal row); refused.
                    log.info("transfer to %s through Click2Dial refused (%s)", callee, channel.name)
                    await self.ari.hangup(chan_id, reason_code=causes.CAUSE_REJECTED)
                    return None
                outbound_id = call_ref = None
                problems = {"agent": "not a SIP phone's channel: only phones place header calls"}
        except AriError as exc:
            log.warning("cannot read the X-Platforma headers of %s: %s", chan_id, exc)
            await self.ari.hangup(chan_id, reason_code=causes.CAUSE_CONGESTION)
            return None
        call = Call(id=new_call_id(), origin=Origin.WEBRTC, agent=rules.journal_text(agent, 16),
                    callee=rules.journal_text(callee, 16), outbound_id=rules.journal_text(outbound_id or "", 16),
                    clid="", call_ref=rules.journal_text(call_ref or "", rules.CALL_REF_MAX))
        call.agent_leg = Leg("agent", chan_id, started=True, up=False)
        try:
            if problems:
                raise rules.ValidationError(problems)
            req = rules.validate_fields(agent=agent, callee=callee, outbound_id=outbound_id,
                                        call_ref=call_ref)
            self.policy.check(req, agent_dialled=False)   # the agent is the calling phone
            # Drawn in the store, off the loop; the agent's limit is checked after it.
            choice = await self.picker.choose_async(req)
            if await agent_is_busy(self.engine, req.agent, self.max_per_agent):   # FastAGI calls too
                self.picker.release(choice)
                raise C2DError("agent has too many active calls", {"agent": "busy"})
            if self.max_active_calls and self.engine.active_calls() >= self.max_active_calls:
                self.picker.release(choice)
                raise C2DError("too many calls up", {"limits": f"{self.max_active_calls} calls are up "
                                                               "already ([limits] max_active_calls)"})
            clid = choice.clid
        except (rules.ValidationError, rules.RuleError, C2DError) as exc:
            fields = exc.errors if isinstance(exc, rules.ValidationError) else (
                {exc.field: exc.message} if isinstance(exc, rules.RuleError) else exc.fields)
            # 484 only for a callee that breaks the number rules; a callee
            # refused by [policy] is forbidden (403), like a CLID.
            bad_number = isinstance(exc, rules.ValidationError) and "callee" in fields
            cause = causes.CAUSE_INVALID_NUMBER if bad_number else causes.CAUSE_REJECTED
            if "call_ref" in fields:
                call.call_ref = ""  # never tag a CDR with a refused value
            stored = self.engine.journal_rejected(call, f"refused (cause {cause}): " + "; ".join(
                f"{k}: {v}" for k, v in sorted(fields.items())))
            log.warning("header call refused (%s)", ", ".join(sorted(fields)),
                        extra={"call_id": call.id, "fields": sorted(fields)})
            tagged = asyncio.ensure_future(self.engine.tag_channel(call, chan_id))
            try:
                # The refusal is on disk before the phone hears it (SPEC §9).
                await asyncio.wrap_future(stored)
            except Exception:  # noqa: BLE001 - logged by the writer; refuse all the same
                pass
            try:
                await tagged
            finally:
                await self.ari.hangup(chan_id, reason_code=cause)
            return None
        call.agent, call.callee, call.outbound_id = req.agent, req.callee, req.outbound_id
        call.call_ref, call.clid = req.call_ref, clid
        await self.engine.start_header_call(call)
        return call


#: The ARI events the app takes: each record type (named after its ARI type)
#: and the method that handles it. The same table is the event filter sent
#: to Asterisk after every connect, so the events asked for are the events
#: handled (ChannelVarset alone was over half of the events of a call).
ROUTES = {
    records.StasisStart: StasisApp._on_stasis_start,
    records.StasisEnd: StasisApp._on_stasis_end,
    records.ChannelStateChange: StasisApp._on_state_change,
    records.ChannelDestroyed: StasisApp._on_destroyed,
    records.ChannelHangupRequest: StasisApp._on_hangup_request,
    records.Dial: StasisApp._on_dial,
    records.ChannelDtmfReceived: StasisApp._on_dtmf,
    records.ChannelUserevent: StasisApp._on_userevent,
}
#: ARI type → record class, for :func:`platforma_c2d.ari.records.parse`.
RECORDS = {cls.__name__: cls for cls in ROUTES}
#: The event filter: the ARI types of ``ROUTES``.
EVENT_TYPES = tuple(RECORDS)

__all__ = ["StasisApp", "ROUTES", "EVENT_TYPES"]
