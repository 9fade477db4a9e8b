"""REST calls bridged by Asterisk itself, followed through ARI (``[dial] bridging =
"dialplan"``; decision 0018, steps 2-4).

The agent leg is originated as in Stasis mode (``Local/<callee>@c2d-agent-leg/n``,
into the app), carrying what ``[c2d-native-call]`` reads
(``calls.legs.native_call_variables``). When the agent answers, its ``;1`` is in
the app; at the trunk pacer's slot (SPEC §3.8: the rate and the hold after a
503 are kept by delaying this step) the service continues it into
``[c2d-native-call]``, whose ``Dial()`` rings the callee through the trunk with
the CLID and bridges the two legs itself. The app stays subscribed to ``;1``
after it leaves (the originate subscribed it; checked against the real
Asterisk by ``tests/integration/test_native_calls.py``), so the call is
followed by ``;1``'s events:

* ``Dial`` with ``;1`` as caller: the callee's channel dialled (``""``),
  ``RINGING``/``PROGRESS``, ``ANSWER`` (connected), a final status;
* the context's ``UserEvent(c2d-native, …)`` after ``Dial()``: ``dialstatus``,
  the trunk's ``sip_code``, the ``cause``, ``ended_by`` (``callee`` or
  ``timeout`` for an answered call);
* ``;1``'s ``ChannelDestroyed``: the agent hung up, the tone is over, or a
  ``DELETE``.

The callee's end is decided by the same rules as a callee leg's in Stasis mode
(``outcomes.leg_gone``, the carrier's 503 hold of ``CallEngine._carrier_refusal``),
from a callee :class:`~platforma_c2d.calls.model.Leg` whose channel is the one
``Dial()`` made. A ``DELETE`` hangs up ``;1`` (``CallEngine.teardown``):
``Dial()`` hangs the callee up. After a restart a call whose ``;1`` is still in
the context is taken back and followed again (:meth:`NativeCalls.resume`); one
that ended while the service was away ends as decision 0012's reconciliation
ends AGI calls (``failed``, or ``completed`` if it was connected).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING

from platforma_c2d.ari.client import AriClient, AriError, AriUnavailable
from platforma_c2d.ari.records import ChannelUserevent, Dial
from platforma_c2d.calls import causes
from platforma_c2d.calls.legs import NATIVE_CONTEXT
from platforma_c2d.calls.model import Call, EndedBy, Leg, Reason, State
from platforma_c2d.calls.pacing import TrunkBusy
from platforma_c2d.config import DialConfig

if TYPE_CHECKING:   # the engine is only passed through
    from platforma_c2d.calls.engine import CallEngine

log = logging.getLogger("platforma_c2d.native")

#: The ``[globals]`` marker of our dialplan that says ``[c2d-native-call]`` is merged.
MARKER = "C2D_NATIVE_CALL"
#: The UserEvent ``[c2d-native-call]`` sends after its ``Dial()``.
USEREVENT = "c2d-native"
_NUMBER = re.compile(r"\b([0-9]{1,3})\b")
#: ``Dial()``'s final statuses of a callee not reached, as the hangup cause a leg would have.
_FAILED = {"BUSY": causes.CAUSE_BUSY, "NOANSWER": causes.CAUSE_NO_ANSWER,
           "CONGESTION": causes.CAUSE_CONGESTION, "CHANUNAVAIL": 20}


def bridging_in_use(dial: DialConfig, marker: str | None) -> bool:
    """Whether REST calls are bridged by the dialplan: ``[dial] bridging = "dialplan"``,
    the agent leg through ``[dial] agent_leg_context`` (its ``;1`` is what continues)
    and the dialplan's :data:`MARKER` global ``1``. Pure."""
    return dial.bridging == "dialplan" and bool(dial.agent_leg_context) and (marker or "").strip() == "1"


async def settle_bridging(ari: AriClient, dial: DialConfig, current: bool) -> bool:
    """Whether the engine bridges REST calls in the dialplan after a connect to ARI
    (:func:`bridging_in_use` with the marker read now; ``current`` kept when ARI does
    not answer). Logs a warning when ``dialplan`` was asked for and cannot be had."""
    if dial.bridging != "dialplan":
        return False
    try:
        marker = await ari.global_variable(MARKER) or ""
    except (AriError, AriUnavailable):
        return current
    use = bridging_in_use(dial, marker)
    if not use:
        why = ("[dial] agent_leg_context is \"\" (or its context is not merged)" if marker.strip() == "1"
               else f"the dialplan's {MARKER} global is {marker!r}, not \"1\": [{NATIVE_CONTEXT}] is not merged")
        log.warning("[dial] bridging = \"dialplan\" cannot be used (%s): REST calls are bridged in the "
                    "Stasis app (docs/configuration.md)", why)
    return use


def _number(fields: dict, key: str) -> int | None:
    found = _NUMBER.search(str(fields.get(key, "")))
    return int(found.group(1)) if found else None


class NativeCalls:
    """Follows and drives the natively bridged REST calls of ``engine`` (see the module
    docstring). ``in_use``: whether new REST calls of extensions are bridged so (set at
    every connect, :func:`settle_bridging`). Runs on the engine's event loop."""

    def __init__(self, engine: "CallEngine"):
        self.engine = engine
        self.in_use = False

    def applies(self, agent_is_external: bool) -> bool:
        """Whether a new REST call is bridged in the dialplan: only an extension's
        (an external agent's leg is a trunk leg of its own, bridged in Stasis)."""
        return self.in_use and not agent_is_external and bool(self.engine.dial.agent_leg_context)

    # ------------------------------------------------------------------
    # the agent answered: continue into the context at the trunk's slot
    # ------------------------------------------------------------------
    async def dial_callee(self, call: Call) -> None:
        """The agent answered (``call`` is ``dialing_callee``): at the trunk pacer's
        slot, continue the agent leg into ``[c2d-native-call]``. A slot that cannot
        come within ``[trunk] max_wait_s`` ends the call ``callee_unavailable`` (the
        agent, still in the app, hears the tone as in Stasis mode)."""
        engine, key = self.engine, call.agent_leg.channel_id
        try:
            place = engine.pacer.ask(key)
        except TrunkBusy as exc:
            await engine._callee_failed(call, Reason.CALLEE_UNAVAILABLE, f"callee not dialled: {exc.detail}")
            return
        if place is None:
            await self._continue(call)
            return
        engine._record(call, f"callee waits for its turn on the trunk ({engine.pacer.waiting} waiting)")
        task = asyncio.get_running_loop().create_task(engine._guard(call, self._paced(call, place)))
        engine._timers.setdefault(call.id, []).append(task)

    async def _paced(self, call: Call, place: asyncio.Future) -> None:
        engine = self.engine
        try:
            await engine.pacer.wait(place)
        except TrunkBusy as exc:
            if not call.ended:
                await engine._callee_failed(call, Reason.CALLEE_UNAVAILABLE, f"callee not dialled: {exc.detail}")
            return
        if call.ended:
            engine.pacer.sent(call.agent_leg.channel_id)   # its slot came too late: never dialled
        else:
            await self._continue(call)

    async def _continue(self, call: Call) -> None:
        """``POST /channels/{;1}/continue`` into the context; the callee's ring timeout is
        ``Dial()``'s. A leg no longer there (the agent hung up meanwhile: 404, or it is
        leaving the app: 409, 422) is gone (``cancelled`` by the agent); any other
        refusal ends the call ``failed``."""
        engine, agent = self.engine, call.agent_leg
        call.continued = True
        try:
            await engine.ari.continue_in_dialplan(agent.channel_id, NATIVE_CONTEXT, call.callee)
        except AriError as exc:
            call.continued = False
            engine.pacer.sent(agent.channel_id)   # it will never reach the trunk
            if call.ended:
                return
            if exc.status in (404, 409, 422):
                await engine.on_gone(call, agent, None)
                return
            log.warning("cannot continue the agent leg into [%s]: %s", NATIVE_CONTEXT, exc,
                        extra=engine._ctx(call))
            await engine.teardown(call, Reason.FAILED, f"agent leg not continued ({exc.status})")

    # ------------------------------------------------------------------
    # the events of a continued agent leg
    # ------------------------------------------------------------------
    def dialled(self, ev: Dial) -> None:
        """A ``Dial`` of the callee by a natively bridged call's agent leg (``ev.caller``):
        the trunk pacer counts its next slot from now (ADR 0019). Called at once, before
        the event waits its turn."""
        if not ev.dialstatus:
            self.engine.pacer.sent(ev.caller_id)

    async def on_dial(self, call: Call, ev: Dial) -> None:
        """The callee's progress: dialled, ringing, answered (connected). A final status
        of a callee not reached is left to the ``UserEvent`` that follows, which has
        the cause and the SIP code (``NOANSWER`` is also Dial()'s word for a 480)."""
        if call.ended:
            return
        leg = call.callee_leg
        if leg is None or leg.channel_id != ev.channel.id:
            leg = Leg("callee", ev.channel.id, started=True)
            self.engine._add_leg(call, leg)
            self.engine._record(call, f"callee dialled by Asterisk ({ev.channel.name or ev.channel.id})")
        status = ev.dialstatus
        if status in ("RINGING", "PROGRESS"):
            leg.ringing = True
        elif status == "ANSWER" and not leg.up:
            leg.up = leg.acted = True
            self.engine.recorder.step_done(call, "callee_answer")
            call.advance(State.CONNECTED)
            self.engine._record(call, "callee answered; bridged by Asterisk")

    async def on_userevent(self, call: Call, ev: ChannelUserevent) -> None:
        """The context's report after ``Dial()``: the callee's end, decided as a callee
        leg's in Stasis mode (the tone, if any, is the context's)."""
        if ev.eventname != USEREVENT or call.ended:
            return
        self.engine.pacer.sent(call.agent_leg.channel_id)   # Dial() is over: never held for it
        fields = ev.userevent
        status = str(fields.get("dialstatus", "")).strip()
        leg = call.callee_leg
        if leg is None:   # Dial() never made the callee's channel (e.g. CHANUNAVAIL)
            leg = Leg("callee", "", started=True)
            call.callee_leg = leg
        cause, sip_code = _number(fields, "cause"), _number(fields, "sip_code")
        if sip_code is not None and sip_code < 200:
            sip_code = None   # a provisional response (ringing), no final answer
        # Dial()'s ring timeout (ours) leaves NOANSWER with no final response; a 480
        # from the trunk is NOANSWER too, with its code.
        leg.timed_out = status == "NOANSWER" and sip_code is None
        if status in _FAILED and not cause:
            cause = _FAILED[status]
        if cause:
            leg.cause = cause   # the context's, over any a hangup request gave
        ended_by = str(fields.get("ended_by", "")).strip()
        if status == "ANSWER" and ended_by == "timeout":
            await self.engine.teardown(call, Reason.COMPLETED, "maximum call duration reached",
                                       by=EndedBy.TIMEOUT)
            return
        if status == "ANSWER" and ended_by != "callee":
            return   # the agent's side ended it: its ChannelDestroyed says so
        leg.up = leg.up or status == "ANSWER"
        await self.engine.on_gone(call, leg, cause, sip_code)

    def tone_in_dialplan(self, call: Call, reason: Reason, detail: str, by: EndedBy) -> bool:
        """The callee was not reached and the context plays the tone to the agent: note
        the outcome (ended when ``;1`` goes, or by a ``DELETE``). False when there is no
        tone to wait for (the caller ends the call at once)."""
        if not call.continued or self.engine.dial.tone_s <= 0 or not causes.tone_for(reason):
            return False
        call.pending_reason, call.pending_by = reason, by
        self.engine._record(call, detail + f"; {causes.tone_for(reason)} to the agent for "
                                           f"{self.engine.dial.tone_s} s (by the dialplan)")
        return True

    # ------------------------------------------------------------------
    # after a restart
    # ------------------------------------------------------------------
    async def resume(self, call: Call, channel: dict) -> bool:
        """Take back a call of an earlier run whose agent leg ``channel`` (ARI channel
        object) is in ``[c2d-native-call]``: subscribe the app to it again and follow it.
        False when it is not such a call (the caller resumes it as a Stasis call)."""
        if (channel.get("dialplan") or {}).get("context") != NATIVE_CONTEXT:
            return False
        call.native = call.continued = True
        call.bridge_id = None
        engine = self.engine
        for leg in call.legs():
            leg.acted = True   # answers acted on before the restart: nothing to bridge
        engine._register(call)
        engine.recorder.resumed(call, True)
        callee = call.callee_leg
        if call.state is State.DIALING_CALLEE and callee is not None and callee.up and not callee.gone:
            call.advance(State.CONNECTED)   # answered while the service was away (when is not known)
            engine._record(call, "taken back after a restart: the callee had answered")
        try:
            await engine.ari.subscribe(f"channel:{call.agent_leg.channel_id}")
        except AriError as exc:
            if exc.status not in (404, 422):
                log.warning("cannot follow the agent leg again: %s", exc, extra=engine._ctx(call))
            await engine.on_gone(call, call.agent_leg, None)   # gone meanwhile
        return True

    async def follow_again(self, channels: dict[str, dict]) -> None:
        """After a reconnect: subscribe the app again to the continued agent legs of the
        calls held in memory that Asterisk still has (``channels``: ``GET /channels``
        by id); those it no longer has are ended by the reconciliation that follows."""
        for call in list(self.engine.calls.values()):
            agent = call.agent_leg
            if call.continued and not call.ended and agent is not None and agent.channel_id in channels:
                try:
                    await self.engine.ari.subscribe(f"channel:{agent.channel_id}")
                except AriError as exc:
                    log.warning("cannot follow the agent leg again: %s", exc, extra=self.engine._ctx(call))
