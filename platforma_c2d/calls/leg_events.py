"""What the ARI events of our legs do to a call: answer, DTMF, hangup causes, a leg gone,
the ring, confirmation and maximum-duration timers (SPEC §3; field reports C02–C05, C09).

Part of :class:`~platforma_c2d.calls.engine.CallEngine` (a mixin: the
engine owns the calls and their teardown; the Stasis app routes each event
here). Why a call ends when a leg goes is decided by
``outcomes.leg_gone``; this carries it out. Handlers are idempotent: a
repeated or late event changes nothing.
"""

from __future__ import annotations

import asyncio
import logging

from platforma_c2d.ari.client import AriError
from platforma_c2d.ari.records import Channel
from platforma_c2d.calls import causes, outcomes
from platforma_c2d.calls.connected_line import bridge_type
from platforma_c2d.calls.dialling import ari_failure
from platforma_c2d.calls.legs import (bridge_id_for, callee_channel_id, confirm_playback_id, ringback_playback_id,
                                      tone_playback_id)
from platforma_c2d.calls.model import Call, EndedBy, Leg, Origin, Reason, State

log = logging.getLogger("platforma_c2d.calls")

#: What ARI answers when a leg is not there to bridge: ``addChannel`` 400
#: "Channel not found" (destroyed) or 422 "Channel not in Stasis application"
#: (hanging up, it has left the app); a browser's ``answer`` 404 or 409 the same.
LEG_LEFT = (400, 404, 409, 422)
#: How long, in seconds, a call whose bridge lost a leg that way waits for that
#: leg's hangup before looking for the leg in Asterisk.
BRIDGE_LEFT_WAIT_S = 3.0


class LegEvents:
    """The engine's event handlers (mixed into ``CallEngine``, whose state it uses)."""

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
            if call.native:   # Asterisk dials the callee and bridges the call (calls.native)
                self._record(call, "agent answered; the dialplan dials the callee")
                await self.native.dial_callee(call)
                return
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
                await self.ari.create_bridge(call.bridge_id, name=call.bridge_id,
                                             bridge_type=bridge_type(self.connected_line_sub))
                call.bridge_made = True
            both = [agent.channel_id, callee.channel_id]
            if call.origin is not Origin.REST:
                # The browser is answered before it joins: its 200 OK, then media.
                await self.ari.answer(agent.channel_id)
                await self.ari.add_channels(call.bridge_id, both)
            else:
                # Ringback off while both join: one round trip, not two (a
                # stop that fails changes nothing).
                results = await asyncio.gather(self.ari.add_channels(call.bridge_id, both),
                                               ari_failure(self.ari.stop_playback(ringback_playback_id(call.id))),
                                               return_exceptions=True)
                for result in results:
                    if isinstance(result, BaseException):
                        raise result
        except AriError as exc:
            if call.ended:
                if call.bridge_id:
                    await self.ari.destroy_bridge(call.bridge_id)  # ended meanwhile: no orphan bridge
            elif exc.status in LEG_LEFT:
                # A leg left the app before the bridge took it (a callee who
                # answered and hung up at once): its hangup, queued behind this
                # event, decides how the call ends; a lost one is looked for.
                self._timer(call, BRIDGE_LEFT_WAIT_S, self._bridge_failed, call, exc.status)
            else:
                await self.teardown(call, Reason.FAILED, f"bridge failed ({exc.status})")
            return
        if call.ended:
            await self.ari.destroy_bridge(call.bridge_id)
            return
        call.advance(State.CONNECTED)
        self.recorder.step_done(call, "bridge")
        self._record(call, "callee answered; bridged")
        self._timer(call, self.dial.max_call_duration_s, self._max_duration, call)

    async def _bridge_failed(self, call: Call, status: int) -> None:
        """The bridge refused our legs (``status``) and no hangup has ended the call
        since: a leg Asterisk no longer has is gone (its events were lost),
        otherwise the call ends ``failed``."""
        if call.ended:
            return
        for leg in (call.callee_leg, call.agent_leg):
            if leg is not None and not leg.gone and await self.ari.channel(leg.channel_id) is None:
                await self.on_gone(call, leg, None)
                return
        await self.teardown(call, Reason.FAILED, f"bridge failed ({status})")

    async def on_leg_replaced(self, call: Call, leg: Leg, channel: Channel) -> None:
        """A transfer put ``channel`` in ``leg``'s place in the call's bridge (its
        ``StasisStart`` named the leg's channel in ``replace_channel``;
        ``calls.transfers``). The call goes on with ``channel`` as that leg; the
        channel it replaced is forgotten (its end is the transferer leaving, not
        the call's). An ended call's newcomer is hung up."""
        if call.ended or leg.gone:
            await self.ari.hangup(channel.id)
            return
        old = leg.channel_id
        if self.by_channel.get(old) is call:
            del self.by_channel[old]
        leg.channel_id = channel.id
        leg.started = leg.up = leg.acted = True
        self.by_channel[channel.id] = call
        self._record(call, f"{leg.role} leg transferred: {channel.name or channel.id} took its place")

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
        self.pacer.sent(leg.channel_id)   # a paced leg gone before its Dial was seen: the trunk is free
        if leg.gone and call.ended:
            return
        if leg.up and not call.ended:
            # The channel our Local leg dialled ends with its own cause, which
            # Dial() and the Local channel do not pass on (calls.far_ends).
            await self.far_ends.settle(leg)
            if leg.far_cause and leg.cause in (None, 0, causes.CAUSE_NORMAL):
                leg.cause = leg.far_cause
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
        if call.native and self.native.tone_in_dialplan(call, reason, detail, by):
            return   # the context plays it; the agent leg's end ends the call
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
            await self.ari.stop_playback(ringback_playback_id(call.id))   # the busy tone plays at once
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
