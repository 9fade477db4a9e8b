"""Placing a call's legs: the agent's and the callee's originates, the browser leg's CDR tags,
the bridge made ahead, the trunk's pacing (SPEC §3.1, §3.2, §3.8, §4).

Part of :class:`~platforma_c2d.calls.engine.CallEngine` (a mixin: the
engine owns the calls, their timers and their teardown); what each
originate carries is specified in ``calls.legs``. Runs on the telephony
thread, like the whole engine (docs/decisions/0002).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future

from platforma_c2d.ari.client import AriError, AriUnavailable
from platforma_c2d.calls import causes
from platforma_c2d.calls.connected_line import bridge_type, shown_to_agent
from platforma_c2d.calls.legs import (RINGBACK_MEDIA, agent_channel_id, agent_originate, bridge_id_for,
                                      callee_channel_id, callee_originate, cdr_variables, ringback_playback_id)
from platforma_c2d.calls.model import Call, EndedBy, Leg, Origin, Reason, State, new_call_id
from platforma_c2d.calls.pacing import TrunkBusy
from platforma_c2d.rules import CallRequest

log = logging.getLogger("platforma_c2d.calls")


async def ari_failure(awaitable) -> AriError | None:
    """Await ``awaitable``; return its ``AriError`` (None on success). Other errors propagate."""
    try:
        await awaitable
    except AriError as exc:
        return exc
    return None


def channel_gone(error: AriError | None) -> bool:
    """True when an ARI request failed because the channel no longer exists (404)."""
    return error is not None and error.status == 404


class Dialling:
    """The engine's leg creation (mixed into ``CallEngine``, whose state it uses:
    ``ari``, ``dial``, ``pacer``, ``recorder``, the call registry and timers)."""

    async def tag_channel(self, call: Call, channel_id: str, role: str = "agent",
                          dialled: bool = False) -> None:
        """Set the CDR variables of SPEC §5 on a channel we did not originate (a browser leg).

        Done at StasisStart, before anything is dialled (field report C22).
        ``dialled``: the call goes on, so the phone is also shown the callee's
        number, kept through the bridge like an originated agent leg's
        (``calls.connected_line``). One request for all of them (``POST
        /channels/{id}/variables``, Asterisk 22.10); when Asterisk refuses it
        (one variable it cannot set, or an Asterisk that predates the
        request), each is set on its own, so the others still land.
        """
        variables = cdr_variables(call, role)
        if dialled:
            variables.update(shown_to_agent(self.connected_line_sub, call.callee))
        try:
            await self.ari.set_variables(channel_id, variables)
            return
        except AriUnavailable:
            raise
        except AriError:
            pass
        results = await asyncio.gather(
            *(self.ari.set_variable(channel_id, name, value) for name, value in variables.items()),
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
        call.native = self.native.applies(req.agent_is_external)
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
        originate = agent_originate(call, self.dial, self.connected_line_sub)
        try:
            if req.agent_is_external:
                # The trunk's call rate (SPEC §3.8), counted from the leg's Dial of the trunk.
                await self.pacer.acquire(call.agent_leg.channel_id)
            if call.ended:   # cancelled while it waited for the trunk: never dialled
                self.pacer.sent(call.agent_leg.channel_id)
            else:
                await self.ari.originate(**originate.kwargs())
                if call.ended:
                    # Cancelled while the request was in flight: its hang-up may
                    # have come before the channel existed (404).
                    await self.ari.hangup(call.agent_leg.channel_id)
                else:
                    self._timer(call, self.dial.agent_ring_timeout_s, self._ring_timeout, call,
                                call.agent_leg)
        except AriError as exc:
            self.pacer.sent(call.agent_leg.channel_id)   # refused: it will never reach the trunk
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
            await self.ari.create_bridge(call.bridge_id, name=call.bridge_id,
                                         bridge_type=bridge_type(self.connected_line_sub))
            call.bridge_made = True
            if call.ended:  # torn down while the request was in flight: no orphan bridge
                await self.ari.destroy_bridge(call.bridge_id)
        except AriError as exc:
            log.warning("bridge not created ahead (%s); again at the answer", exc, extra=self._ctx(call))

    async def _ringback(self, call: Call) -> None:
        """Ringing to the agent of a REST call while the callee rings (SPEC §3.2):
        the ringback tone as a playback of the agent's leg (``RINGBACK_MEDIA``), stopped
        by its id when the callee answers or fails.

        Not ``POST /channels/{id}/ring``: the agent leg is a Local channel, already
        answered, which refuses a ringing indication once up, so Asterisk fakes it
        in-band with a tone generator on the leg itself; ``DELETE .../ring`` (stop
        the indication) is passed along the Local channel to its other half instead
        of stopping that generator. The tone then played for the whole call (until
        the callee's first audio frame, never when the callee sends none), 50 RTP
        packets a second to the agent's phone. A playback is stopped on the leg."""
        agent = call.agent_leg
        if call.origin is Origin.REST and agent is not None and not call.ended and not agent.gone:
            try:
                await self.ari.play(agent.channel_id, RINGBACK_MEDIA, playback_id=ringback_playback_id(call.id))
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
        try:
            place = self.pacer.ask(leg.channel_id)   # the place in line is taken now, in this order
        except TrunkBusy as exc:
            leg.gone = True
            await self._callee_failed(call, Reason.CALLEE_UNAVAILABLE, f"callee leg not sent: {exc.detail}")
            return
        side = [self._make_bridge(call), self._ringback(call)] if prepare else []
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
        if call.ended:
            self.pacer.sent(leg.channel_id)   # given its slot too late: never dialled
        else:
            await self._originate_callee(call, leg)

    async def _originate_callee(self, call: Call, leg: Leg, side: list | tuple = ()) -> None:
        """``POST /channels`` of the callee leg (and ``side`` requests concurrently); ring timer."""
        originate = callee_originate(call, self.dial, self.connected_line_sub)
        results = await asyncio.gather(ari_failure(self.ari.originate(**originate.kwargs())),
                                       *side, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        exc = results[0]
        if exc is None:
            self._timer(call, self.dial.callee_ring_timeout_s, self._ring_timeout, call, leg)
        else:
            self.pacer.sent(leg.channel_id)   # refused: it will never reach the trunk
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
        ring = asyncio.ensure_future(ari_failure(self.ari.ring(chan_id)))
        tags = asyncio.ensure_future(self.tag_channel(call, chan_id, dialled=True))
        try:
            await asyncio.wrap_future(first)
            stored = True
        except Exception:
            stored = False
        caller_gone = ring.done() and channel_gone(ring.result())
        if stored and not call.ended and not caller_gone:
            await self._create_callee_leg(call, prepare=True)
        ring_failed = await ring
        await tags
        if not stored:
            await self.teardown(call, Reason.FAILED, "the journal cannot be written",
                                agent_cause=causes.CAUSE_CONGESTION)
        elif channel_gone(ring_failed) and not call.ended:
            call.agent_leg.gone = True
            await self.teardown(call, Reason.CANCELLED, "caller gone before ringing", by=EndedBy.AGENT)

    def journal_rejected(self, call: Call, detail: str) -> Future:
        """Journal a call refused before anything was dialled (ended, ``rejected``).

        Returns the commit's future."""
        call.end(Reason.REJECTED)
        return self.recorder.ended(call, detail, was_active=False)
