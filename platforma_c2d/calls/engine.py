"""The call engine: the state machine of SPEC §3, driven by Stasis events.

Threading: the engine lives on one asyncio event loop (the telephony
thread, see docs/architecture.md). Every ARI event and every request from
the HTTP layer runs there, one at a time between awaits, so call state has
exactly one owner and needs no locks. After every ``await`` a handler
re-checks the call, because another event may have ended it meanwhile.

Legs are created with ids we choose (``c2d-<call id>-agent`` /
``-callee``) and registered before the ARI request is sent, so an early
StasisStart is never "unknown" (field report C01); no operation is sent on
a leg before its StasisStart (C02); only ``Up`` counts as answered (C03);
our own ring timers decide "no answer" (C04); every way a call ends runs the
same teardown, which hangs up every leg and destroys the bridge, treating
"already gone" as success (C06, C07); repeated events change nothing (C09).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future

from platforma_c2d.ari.client import AriClient, AriError
from platforma_c2d.calls import causes, outcomes
from platforma_c2d.calls.legs import (LEG_PREFIX, agent_channel_id, agent_originate, bridge_id_for,
                                      callee_channel_id, callee_originate, cdr_variables,
                                      confirm_playback_id, tone_playback_id)
from platforma_c2d.calls.model import Call, EndedBy, Leg, Origin, Reason, State, new_call_id
from platforma_c2d.calls.recorder import Recorder, call_context
from platforma_c2d.calls.pacing import TrunkBusy, TrunkPacer
from platforma_c2d.config import DialConfig
from platforma_c2d.metrics import Metrics
from platforma_c2d.rules import CallRequest
from platforma_c2d.store.journal import Journal, JournalWriter

log = logging.getLogger("platforma_c2d.calls")

#: The leg ids, once here, are specified in ``calls.legs`` (imported above; kept importable from here).
__all__ = ["CallEngine", "LEG_PREFIX", "agent_channel_id", "callee_channel_id", "bridge_id_for"]


async def _failure(awaitable) -> AriError | None:
    """Await ``awaitable``; return its ``AriError`` (None on success). Other errors propagate."""
    try:
        await awaitable
    except AriError as exc:
        return exc
    return None


def _gone(error: AriError | None) -> bool:
    """True when an ARI request failed because the channel no longer exists (404)."""
    return error is not None and error.status == 404


class CallEngine:
    """Owns every active call; turns ARI events into state changes.

    ``ari``: the REST client; ``journal``: the store, written at every
    change through ``writer`` (its writing thread; one is started when none
    is given) — a new call is on disk before the API answers and before its
    callee is dialled, an ended one before ``cancel``/``teardown`` return;
    ``dial``: ``[dial]`` config; ``metrics``: counters; ``pacer``: the
    trunk's call rate and carrier holds (SPEC §3.8; none given: no pacing).
    All methods run on the engine's event loop.
    """

    def __init__(self, ari: AriClient, journal: Journal, dial: DialConfig, metrics: Metrics,
                 writer: JournalWriter | None = None, pacer: TrunkPacer | None = None):
        self.ari, self.journal, self.dial, self.metrics = ari, journal, dial, metrics
        self.writer = writer or JournalWriter(journal)
        self.recorder = Recorder(self.writer, metrics)
        self.pacer = pacer or TrunkPacer(hold_after_503_s=0.0)
        self.calls: dict[str, Call] = {}
        self.by_channel: dict[str, Call] = {}
        self._timers: dict[str, list[asyncio.TimerHandle]] = {}

    # ------------------------------------------------------------------
    # bookkeeping
    # ------------------------------------------------------------------
    def _register(self, call: Call) -> None:
        self.calls[call.id] = call
        for leg in call.legs():
            self.by_channel[leg.channel_id] = call

    def _add_leg(self, call: Call, leg: Leg) -> None:
        if leg.role == "agent":
            call.agent_leg = leg
        else:
            call.callee_leg = leg
        self.by_channel[leg.channel_id] = call

    def _timer(self, call: Call, delay_s: float, coro_fn, *args) -> None:
        """Run ``coro_fn(*args)`` in ``delay_s`` seconds, unless the call ends first.

        Nothing is armed for an ended call (it may have ended during the
        ``await`` before): its timers were cancelled and forgotten by
        ``teardown``, and a new one would hold the call in memory."""
        if call.ended:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            loop.create_task(self._guard(call, coro_fn(*args)))

        self._timers.setdefault(call.id, []).append(loop.call_later(delay_s, fire))

    async def _guard(self, call: Call, coro) -> None:
        try:
            await coro
        except Exception:  # noqa: BLE001 - a failing timer must not leave the call hanging
            log.exception("call step failed", extra=self._ctx(call))
            if not call.ended:
                await self.teardown(call, Reason.FAILED, "internal error")

    def _record(self, call: Call, detail: str, **kw) -> Future:
        """Journal the call as it is now (``Recorder.record``); returns the commit's future.

        Nothing waits on SQL here: the writer thread commits (group commit).
        Where an order matters, ``await asyncio.wrap_future(...)`` it: only
        then is the event loop woken for the commit.
        """
        return self.recorder.record(call, detail, **kw)

    async def flush(self) -> None:
        """Wait until every record submitted so far is committed (or failed)."""
        await asyncio.wrap_future(self.writer.flush())

    _ctx = staticmethod(call_context)

    def active_for_agent(self, agent: str) -> int:
        """How many calls of ``agent`` are not yet ended."""
        return sum(1 for c in self.calls.values() if c.agent == agent and not c.ended)

    def active_calls(self, token_name: str | None = None) -> int:
        """How many calls are not yet ended: all of them, or (``token_name``
        given) those placed with that token."""
        return sum(1 for c in self.calls.values()
                   if not c.ended and (token_name is None or c.token_name == token_name))

    # ------------------------------------------------------------------
    # leg creation
    # ------------------------------------------------------------------
    async def tag_channel(self, call: Call, channel_id: str, role: str = "agent") -> None:
        """Set the CDR variables of SPEC §5 on a channel we did not originate (a browser leg).

        Done at StasisStart, before anything is dialled (field report C22).
        """
        results = await asyncio.gather(
            *(self.ari.set_variable(channel_id, name, value)
              for name, value in cdr_variables(call, role).items()),
            return_exceptions=True)  # independent requests: one round trip, not five
        for result in results:
            if isinstance(result, AriError):
                log.warning("cannot tag the CDR: %s", result, extra=self._ctx(call))
            elif isinstance(result, BaseException):
                raise result

    async def start_rest_call(self, req: CallRequest, clid: str, *, call_id: str | None = None,
                              token_name: str = "",
                              idempotency_key: str | None = None,
                              request_hash: str | None = None, status_callback: str | None = None) -> Call:
        """Place a click-to-dial call: ring the agent first (SPEC §3.1).

        ``call_id``: the id to give the call (32 hex characters; a new one
        when None). The call's first record is committed before this
        returns, while the agent leg is requested. If Asterisk refuses the
        leg, the call ends at once (``agent_unavailable`` when the endpoint
        cannot be reached, ``failed`` otherwise) and is returned ended. Raises
        the database's exception (after hanging the call up) when the journal
        cannot be written. ``status_callback``: the call's own webhook URL (checked),
        stored with the first record.
        """
        call = Call(id=call_id or new_call_id(), origin=Origin.REST, agent=req.agent, callee=req.callee,
                    outbound_id=req.outbound_id, clid=clid, call_ref=req.call_ref,
                    agent_is_external=req.agent_is_external, token_name=token_name)
        call.agent_leg = Leg("agent", agent_channel_id(call.id))
        self.recorder.step_begins(call)
        self._register(call)
        # The first record is committed while the agent's phone is asked to
        # ring (an internal leg, never the callee); the API answers only once
        # it is on disk (SPEC §9). Should the process die in between, the
        # restart hangs up the unjournalled leg (recovery: unknown c2d-
        # channels), and the client never got its 201.
        first = self.recorder.started(call, f"call requested by {token_name or 'anonymous'}: agent "
                                            f"{call.agent} -> callee {call.callee} with CLID {call.clid}",
                                      idempotency_key=idempotency_key, request_hash=request_hash,
                                      status_callback=status_callback)
        originate = agent_originate(call, self.dial)
        try:
            if req.agent_is_external:
                await self.pacer.acquire()   # the trunk's call rate (SPEC §3.8)
            if not call.ended:   # not cancelled while it waited for the trunk
                await self.ari.originate(**originate.kwargs())
                if call.ended:
                    # Cancelled while the request was in flight: its hang-up may
                    # have come before the channel existed (404).
                    await self.ari.hangup(call.agent_leg.channel_id)
                else:
                    self._timer(call, self.dial.agent_ring_timeout_s, self._ring_timeout, call,
                                call.agent_leg)
        except AriError as exc:
            if not call.ended:
                call.agent_leg.gone = True
                reason = Reason.AGENT_UNAVAILABLE if exc.status in (400, 404, 409, 500) else Reason.FAILED
                await self.teardown(call, reason, f"agent leg refused by Asterisk ({exc.status})")
        except TrunkBusy as exc:
            if not call.ended:
                call.agent_leg.gone = True
                await self.teardown(call, Reason.AGENT_UNAVAILABLE, f"agent leg not sent: {exc.detail}")
        try:
            await asyncio.wrap_future(first)
        except Exception:
            # Not on disk: the call must not go on unjournalled.
            await self.teardown(call, Reason.FAILED, "the journal cannot be written")
            raise
        return call

    async def _make_bridge(self, call: Call) -> None:
        """Create the call's bridge ahead of the callee's answer (a failure is retried then)."""
        call.bridge_id = bridge_id_for(call.id)
        try:
            await self.ari.create_bridge(call.bridge_id, name=call.bridge_id)
            call.bridge_made = True
            if call.ended:  # torn down while the request was in flight: no orphan bridge
                await self.ari.destroy_bridge(call.bridge_id)
        except AriError as exc:
            log.warning("bridge not created ahead (%s); again at the answer", exc, extra=self._ctx(call))

    async def _ringback(self, call: Call) -> None:
        """Ringing to the agent of a REST call while the callee rings (SPEC §3.2)."""
        agent = call.agent_leg
        if call.origin is Origin.REST and agent is not None and not call.ended and not agent.gone:
            try:
                await self.ari.ring(agent.channel_id)
            except AriError:
                pass

    async def _create_callee_leg(self, call: Call, prepare: bool = False) -> None:
        """Originate the callee leg through the trunk with the CLID, in its turn.

        ``prepare``: also, concurrently, create the call's bridge and start
        the agent's ringback, so that the callee's answer needs only one
        more round trip to Asterisk. When the trunk's call rate or a
        carrier's hold makes the leg wait (SPEC §3.8), it waits in a task of
        the call (cancelled by ``teardown``), so the call's other events
        are not held up; a leg that cannot go out within ``[trunk]
        max_wait_s`` ends the call as ``callee_unavailable``.
        """
        leg = call.callee_leg or Leg("callee", callee_channel_id(call.id))
        self._add_leg(call, leg)
        side = [self._make_bridge(call), self._ringback(call)] if prepare else []
        try:
            place = self.pacer.ask()   # the place in line is taken now, in this order
        except TrunkBusy as exc:
            leg.gone = True
            await self._callee_failed(call, Reason.CALLEE_UNAVAILABLE, f"callee leg not sent: {exc.detail}")
            return
        if place is None:
            await self._originate_callee(call, leg, side)
            return
        task = asyncio.get_running_loop().create_task(self._guard(call, self._paced_callee(call, leg, place)))
        self._timers.setdefault(call.id, []).append(task)
        self._record(call, f"callee leg waits for its turn on the trunk ({self.pacer.waiting} waiting)")
        for result in await asyncio.gather(*side, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result

    async def _paced_callee(self, call: Call, leg: Leg, place: asyncio.Future) -> None:
        """Wait for the callee leg's turn on the trunk, then dial it (SPEC §3.8)."""
        try:
            await self.pacer.wait(place)
        except TrunkBusy as exc:
            if not call.ended:
                leg.gone = True
                await self._callee_failed(call, Reason.CALLEE_UNAVAILABLE, f"callee leg not sent: {exc.detail}")
            return
        if not call.ended:
            await self._originate_callee(call, leg)

    async def _originate_callee(self, call: Call, leg: Leg, side: list | tuple = ()) -> None:
        """``POST /channels`` of the callee leg (and ``side`` requests concurrently); ring timer."""
        originate = callee_originate(call, self.dial)
        results = await asyncio.gather(_failure(self.ari.originate(**originate.kwargs())),
                                       *side, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        exc = results[0]
        if exc is None:
            self._timer(call, self.dial.callee_ring_timeout_s, self._ring_timeout, call, leg)
        else:
            if not call.ended:
                leg.gone = True
                await self._callee_failed(call, Reason.CALLEE_UNAVAILABLE,
                                          f"callee leg refused by Asterisk ({exc.status})")
            return
        if call.ended:  # ended while the request was in flight
            await self.ari.hangup(leg.channel_id)

    async def start_header_call(self, call: Call) -> None:
        """Continue a validated WebRTC/header call: 180 to the browser, dial the callee (SPEC §4).

        ``call`` has its agent leg (the browser's channel, already in Stasis)
        and its CLID chosen. It is journalled before the callee is dialled;
        the browser channel's CDR tags and its 180 are sent at once, and
        awaited before this returns (field reports C22, C26).
        """
        self.recorder.step_begins(call)
        # The caller is on the line already: the call starts at dialing_callee.
        # No await before it is registered and journalled, so a hang-up
        # during what follows finds a consistent call.
        call.agent_leg.up = True
        call.advance(State.DIALING_CALLEE)
        call.callee_leg = Leg("callee", callee_channel_id(call.id))  # journalled before it is dialled
        self._register(call)
        first = self.recorder.started(call, f"call from a phone of agent {call.agent}; dialling the callee")
        # The CDR tags and 180 Ringing to the browser (C26) go out while the
        # record is committed; the callee is dialled as soon as it is, with
        # the tags still in flight: a CDR is finalised only at the hang-up,
        # which waits for them (C22: set at creation, never at teardown).
        chan_id = call.agent_leg.channel_id
        ring = asyncio.ensure_future(_failure(self.ari.ring(chan_id)))
        tags = asyncio.ensure_future(self.tag_channel(call, chan_id))
        try:
            await asyncio.wrap_future(first)
            stored = True
        except Exception:
            stored = False
        caller_gone = ring.done() and _gone(ring.result())
        if stored and not call.ended and not caller_gone:
            await self._create_callee_leg(call, prepare=True)
        ring_failed = await ring
        await tags
        if not stored:
            await self.teardown(call, Reason.FAILED, "the journal cannot be written",
                                agent_cause=causes.CAUSE_CONGESTION)
        elif _gone(ring_failed) and not call.ended:
            call.agent_leg.gone = True
            await self.teardown(call, Reason.CANCELLED, "caller gone before ringing", by=EndedBy.AGENT)

    def journal_rejected(self, call: Call, detail: str) -> Future:
        """Journal a call refused before anything was dialled (ended, ``rejected``).

        Returns the commit's future."""
        call.end(Reason.REJECTED)
        return self.recorder.ended(call, detail, was_active=False)

    async def resume(self, call: Call, bridges: dict[str, dict]) -> None:
        """Take back a call of an earlier run, rebuilt from the journal (``recovery``).

        ``bridges``: Asterisk's bridges now, by id. What becomes of it is
        decided by :func:`outcomes.resume_plan` (the customer is never
        dialled twice); this carries the plan out.
        """
        call.bridge_made = bool(call.bridge_id) and call.bridge_id in bridges
        self._register(call)
        plan = outcomes.resume_plan(call, bridges)
        self.recorder.resumed(call, plan.adopted)
        if plan.agent_answered:
            # The agent had answered but the record of that never reached
            # the disk; the callee's leg exists: it was dialled, go on from there.
            call.agent_leg.acted = True
            call.advance(State.DIALING_CALLEE)
            self._record(call, "taken back after a restart: the callee was already dialled")
        if plan.end is not None:
            await self.teardown(call, plan.end.reason, plan.end.detail, by=plan.end.by)
            return
        if plan.max_duration:
            remaining = self.dial.max_call_duration_s - call.duration_s
            self._timer(call, max(1.0, remaining), self._max_duration, call)
        for leg in plan.ring:
            timeout = (self.dial.agent_ring_timeout_s if leg.role == "agent"
                       else self.dial.callee_ring_timeout_s)
            self._timer(call, timeout, self._ring_timeout, call, leg)

    # ------------------------------------------------------------------
    # events
    # ------------------------------------------------------------------
    async def on_stasis_start(self, call: Call, leg: Leg, state: str = "") -> None:
        """A leg of ours entered the app (originated legs do so when answered).

        Operations on a leg are sent only after this event (field report C02).
        """
        if leg.started:
            return  # duplicate event (C09)
        leg.started = True
        if call.ended or leg.gone:
            await self.ari.hangup(leg.channel_id)
            return
        if state == "Up":
            leg.up = True
        if leg.up:
            await self._answered(call, leg)

    async def on_ringing(self, call: Call, leg: Leg) -> None:
        """The leg's phone rings (180)."""
        leg.ringing = True

    async def on_up(self, call: Call, leg: Leg) -> None:
        """A leg answered (state ``Up``; ringing and 183 do not count, C03)."""
        if leg.gone or call.ended:
            return
        leg.up = True
        if leg.started:
            await self._answered(call, leg)

    async def _answered(self, call: Call, leg: Leg) -> None:
        """Act once on an answered leg that is in the app: next leg, or the bridge."""
        if leg.acted:
            return
        leg.acted = True
        if leg.role == "agent" and call.state is State.DIALING_AGENT:
            if call.agent_is_external and self.dial.confirm_external_agent and not leg.confirmed:
                await self._ask_confirmation(call, leg)
                return
            await self._agent_ready(call, leg)
        elif leg.role == "callee" and call.state is State.DIALING_CALLEE:
            await self._connect(call)

    async def _ask_confirmation(self, call: Call, leg: Leg) -> None:
        """An external agent answered: play a tone and wait for 1 (field report C05).

        An announcement or voicemail that answers the agent's number must not
        make us dial the customer.
        """
        self._record(call, "external agent answered; waiting for 1")
        try:
            await self.ari.play(leg.channel_id, "tone:info", playback_id=confirm_playback_id(call.id))
        except AriError:
            pass
        self._timer(call, self.dial.confirm_timeout_s, self._confirm_timeout, call, leg)

    async def on_dtmf(self, call: Call, leg: Leg, digit: str) -> None:
        """A DTMF digit from a leg: ``1`` from an external agent who is asked to confirm."""
        if (call.ended or leg.gone or leg.role != "agent" or leg.confirmed or not leg.acted
                or call.state is not State.DIALING_AGENT or digit != "1"):
            return
        leg.confirmed = True
        await self.ari.stop_playback(confirm_playback_id(call.id))
        await self._agent_ready(call, leg)

    async def _confirm_timeout(self, call: Call, leg: Leg) -> None:
        if not call.ended and not leg.confirmed:
            await self.teardown(call, Reason.AGENT_NO_ANSWER, "external agent did not press 1", by=EndedBy.TIMEOUT)

    async def _agent_ready(self, call: Call, leg: Leg) -> None:
        """The agent is on the line: dial the callee, ringback to the agent (SPEC §3.2)."""
        if leg.role == "agent" and call.state is State.DIALING_AGENT:
            call.advance(State.DIALING_CALLEE)
            self.recorder.step_done(call, "agent_answer")
            # The callee leg is in the record before it is dialled: a call
            # taken back after a restart is never dialled twice (resume).
            self._add_leg(call, Leg("callee", callee_channel_id(call.id)))
            self._record(call, "agent answered; dialling the callee")
            # The callee, the bridge and the agent's ringback at once.
            await self._create_callee_leg(call, prepare=True)

    async def _connect(self, call: Call) -> None:
        self.recorder.step_done(call, "callee_answer")
        agent, callee = call.agent_leg, call.callee_leg
        try:
            if not call.bridge_made:  # not made while the callee rang (or a call taken back)
                call.bridge_id = bridge_id_for(call.id)
                await self.ari.create_bridge(call.bridge_id, name=call.bridge_id)
                call.bridge_made = True
            both = [agent.channel_id, callee.channel_id]
            if call.origin is not Origin.REST:
                # The browser is answered before it joins: its 200 OK, then media.
                await self.ari.answer(agent.channel_id)
                await self.ari.add_channels(call.bridge_id, both)
            else:
                # Ringback off while both join: one round trip, not two (a
                # ring_stop that fails changes nothing).
                results = await asyncio.gather(self.ari.add_channels(call.bridge_id, both),
                                               _failure(self.ari.ring_stop(agent.channel_id)),
                                               return_exceptions=True)
                for result in results:
                    if isinstance(result, BaseException):
                        raise result
        except AriError as exc:
            if not call.ended:
                await self.teardown(call, Reason.FAILED, f"bridge failed ({exc.status})")
            elif call.bridge_id:
                await self.ari.destroy_bridge(call.bridge_id)  # ended meanwhile: no orphan bridge
            return
        if call.ended:
            await self.ari.destroy_bridge(call.bridge_id)
            return
        call.advance(State.CONNECTED)
        self.recorder.step_done(call, "bridge")
        self._record(call, "callee answered; bridged")
        self._timer(call, self.dial.max_call_duration_s, self._max_duration, call)

    async def on_hangup_request(self, call: Call, leg: Leg, cause: int | None,
                                sip_code: int | None = None) -> None:
        """Asterisk is hanging the leg up; remember the cause (and SIP code) it gave."""
        if cause and leg.cause is None:
            leg.cause = cause
        if sip_code and leg.sip_code is None:
            leg.sip_code = sip_code

    async def on_dial_status(self, call: Call, leg: Leg, status: str) -> None:
        """A ``Dial`` event's status for a leg: ``RINGING`` / ``PROGRESS`` (183,
        early media) mean the far end rings; a final status is used when the
        hangup cause is missing."""
        if status in ("RINGING", "PROGRESS"):
            leg.ringing = True
            return
        mapped = {"BUSY": causes.CAUSE_BUSY, "NOANSWER": causes.CAUSE_NO_ANSWER,
                  "CONGESTION": causes.CAUSE_CONGESTION, "CHANUNAVAIL": 20}.get(status)
        if mapped and not leg.cause:
            leg.cause = mapped

    async def on_gone(self, call: Call, leg: Leg, cause: int | None, sip_code: int | None = None) -> None:
        """A leg is destroyed (or was found missing): decide how the call ends.

        ``sip_code``: the final SIP response of the leg (ARI ``tech_cause``)."""
        if cause and leg.cause in (None, 0, causes.CAUSE_NORMAL):
            leg.cause = cause
        if sip_code and leg.sip_code is None:
            leg.sip_code = sip_code
        if leg.gone and call.ended:
            return
        leg.gone = True
        call.first_gone = call.first_gone or leg.role
        carrier = self._carrier_refusal(call, leg)
        if call.ended:
            return
        ending = outcomes.leg_gone(call, leg, carrier)
        if ending.tone:
            await self._callee_failed(call, ending.reason, ending.detail, by=ending.by)
        else:
            await self.teardown(call, ending.reason, ending.detail, by=ending.by)

    def _carrier_refusal(self, call: Call, leg: Leg) -> str:
        """A trunk leg refused by the carrier (SIP 5xx, never answered): count it, hold
        the trunk after a 503 (SPEC §3.8); returns the journal detail ("" otherwise)."""
        through_trunk = leg.role == "callee" or call.agent_is_external
        code = leg.sip_code or 0
        if leg.up or not through_trunk or not 500 <= code < 600:
            return ""
        self.recorder.carrier_refused(code)
        detail = f"{leg.role} leg refused by the carrier (SIP {code}, cause {leg.cause})"
        if code == 503:
            seconds, source = self.pacer.hold_after_503(call.callee if leg.role == "callee" else call.agent)
            if seconds > 0:
                detail += f"; no new leg on the trunk for {seconds:g} s ({source})"
        return detail

    async def _callee_failed(self, call: Call, reason: Reason, detail: str,
                             by: EndedBy = EndedBy.SYSTEM) -> None:
        """The callee could not be reached: tone to the agent, then end (SPEC §3.5, §4).

        ``by``: who ended it (the callee's side, our ring timer, or the system
        when Asterisk refused the leg)."""
        agent = call.agent_leg
        if call.origin is not Origin.REST:
            # A browser learns why from the SIP response (486/480/503/403).
            await self.teardown(call, reason, detail, agent_cause=causes.sip_cause_for(reason), by=by)
            return
        tone = causes.tone_for(reason)
        if agent is None or agent.gone or not tone or self.dial.tone_s <= 0:
            await self.teardown(call, reason, detail, by=by)
            return
        call.pending_reason, call.pending_by = reason, by
        self._record(call, detail + f"; {tone} to the agent for {self.dial.tone_s} s")
        try:
            await self.ari.ring_stop(agent.channel_id)
            await self.ari.play(agent.channel_id, tone, playback_id=tone_playback_id(call.id))
        except AriError:
            await self.teardown(call, reason, detail, by=by)
            return
        self._timer(call, self.dial.tone_s, self.teardown, call, reason, detail, None, by)

    async def _ring_timeout(self, call: Call, leg: Leg) -> None:
        if call.ended or leg.up or leg.gone:
            return
        leg.timed_out = True
        if not await self.ari.hangup(leg.channel_id, reason_code=causes.CAUSE_NO_ANSWER):
            await self.on_gone(call, leg, None)  # already gone and its events were lost
        else:
            self._timer(call, 3.0, self._confirm_gone, call, leg)

    async def _confirm_gone(self, call: Call, leg: Leg) -> None:
        """A hung-up leg whose ChannelDestroyed never came (events lost): check Asterisk."""
        if not call.ended and not leg.gone and await self.ari.channel(leg.channel_id) is None:
            await self.on_gone(call, leg, None)

    async def _max_duration(self, call: Call) -> None:
        if not call.ended:
            await self.teardown(call, Reason.COMPLETED, "maximum call duration reached", by=EndedBy.TIMEOUT)

    # ------------------------------------------------------------------
    # the end
    # ------------------------------------------------------------------
    async def cancel(self, call: Call) -> None:
        """Hang up every leg of ``call`` (SPEC §2 DELETE): reason ``cancelled`` if the
        callee had not answered, ``completed`` if they had; ended by ``api``.

        A call whose outcome is already known (the agent hears the busy or
        congestion tone) keeps that reason and who decided it: the attempt
        did not fail because of the cancel."""
        if call.ended:
            return
        if call.pending_reason is not None:
            await self.teardown(call, call.pending_reason, "cancelled through the API during the tone",
                                by=call.pending_by or EndedBy.SYSTEM)
            return
        reason = Reason.COMPLETED if call.answered_at is not None else Reason.CANCELLED
        await self.teardown(call, reason, "hung up through the API", by=EndedBy.API)

    async def teardown(self, call: Call, reason: Reason, detail: str,
                       agent_cause: int | None = None, by: EndedBy = EndedBy.SYSTEM) -> None:
        """End ``call`` with ``reason``, ended ``by`` someone (SPEC §2 ``ended_by``; the
        service or the PBX unless told otherwise): journal, then hang up every leg and
        destroy the bridge.

        Idempotent. The legs are hung up (concurrently) before the bridge is
        destroyed so the cause is not overwritten (C07); a leg that is
        already gone is fine. Returns once the ended record is committed
        (a failed write is logged, never raised: the legs go anyway).
        """
        if call.ended:
            return
        call.end(reason, by)
        causes.note_outcome(call)
        for handle in self._timers.pop(call.id, []):
            handle.cancel()
        ended = self.recorder.ended(call, detail)
        legs = [leg for leg in call.legs() if not leg.gone]
        results = await asyncio.gather(
            *(self.ari.hangup(leg.channel_id,
                              reason_code=agent_cause if (leg.role == "agent" and agent_cause) else None)
              for leg in legs), return_exceptions=True)
        for leg, result in zip(legs, results):
            if isinstance(result, AriError):
                log.warning("hangup of %s leg failed: %s", leg.role, result, extra=self._ctx(call))
            elif isinstance(result, BaseException):
                log.error("hangup of %s leg failed: %r", leg.role, result, extra=self._ctx(call))
        if call.bridge_id:
            try:
                await self.ari.destroy_bridge(call.bridge_id)
            except AriError as exc:
                log.warning("bridge destroy failed: %s", exc, extra=self._ctx(call))
        try:
            await asyncio.wrap_future(ended)
        except Exception:  # noqa: BLE001 - logged by the writer; the call is over regardless
            pass
        finally:
            self._forget(call)

    def _forget(self, call: Call) -> None:
        self.calls.pop(call.id, None)
        for leg in call.legs():
            if self.by_channel.get(leg.channel_id) is call:
                self.by_channel.pop(leg.channel_id, None)
