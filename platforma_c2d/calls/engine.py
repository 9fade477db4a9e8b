"""The call engine: the state machine of SPEC §3, driven by Stasis events.

Its seams, one module each: what each leg's originate carries
(``calls.legs``, pure); placing the legs (``calls.dialling``); what the
events of our legs do (``calls.leg_events``); why a call ends when a leg
goes and how a call taken back after a restart goes on (``calls.outcomes``,
pure); recording each change (``calls.recorder``). This module owns the
calls, their timers, their resumption and their one teardown.

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
import collections
import logging
from concurrent.futures import Future

from platforma_c2d.ari.client import AriClient, AriError
from platforma_c2d.calls import causes, outcomes
from platforma_c2d.calls.dialling import Dialling
from platforma_c2d.calls.far_ends import FarEnds
from platforma_c2d.calls.leg_events import LegEvents
from platforma_c2d.calls.legs import LEG_PREFIX, agent_channel_id, bridge_id_for, callee_channel_id
from platforma_c2d.calls.model import Call, EndedBy, Leg, Reason, State
from platforma_c2d.calls.native import NativeCalls
from platforma_c2d.calls.recorder import Recorder, call_context
from platforma_c2d.calls.pacing import TrunkPacer
from platforma_c2d.config import DialConfig
from platforma_c2d.metrics import Metrics
from platforma_c2d.store.journal import Journal
from platforma_c2d.store.writer import JournalWriter

log = logging.getLogger("platforma_c2d.calls")

#: The leg ids, once here, are specified in ``calls.legs`` (imported above; kept importable from here).
__all__ = ["CallEngine", "LEG_PREFIX", "agent_channel_id", "callee_channel_id", "bridge_id_for"]


class CallEngine(Dialling, LegEvents):
    """Owns every active call; turns ARI events into state changes.

    ``ari``: the REST client; ``journal``: the store, written at every
    change through ``writer`` (its writing thread, started and closed by
    whoever built it — the composition root) — a new call is on disk before
    the API answers and before its callee is dialled, an ended one before
    ``cancel``/``teardown`` return;
    ``dial``: ``[dial]`` config; ``metrics``: counters; ``pacer``: the
    trunk's call rate and carrier holds (SPEC §3.8; none given: no pacing).
    All methods run on the engine's event loop.
    """

    def __init__(self, ari: AriClient, journal: Journal, dial: DialConfig, metrics: Metrics,
                 writer: JournalWriter, pacer: TrunkPacer | None = None):
        self.ari, self.journal, self.dial, self.metrics = ari, journal, dial, metrics
        self.writer = writer
        self.recorder = Recorder(self.writer, metrics)
        self.pacer = pacer or TrunkPacer(hold_after_503_s=0.0)
        #: the channels our answered Local legs dialled, followed for their own cause
        self.far_ends = FarEnds(ari)
        #: the subroutine context our legs carry to keep their connected line
        #: through a two-party bridge; "" = the conference mixer (calls.connected_line)
        self.connected_line_sub = ""
        #: REST calls bridged by Asterisk's Dial() (``[dial] bridging = "dialplan"``)
        self.native = NativeCalls(self)
        self.calls: dict[str, Call] = {}
        self.by_channel: dict[str, Call] = {}
        self._timers: dict[str, list[asyncio.TimerHandle]] = {}
        #: calls registered and not yet ended, counted by agent and by token
        #: (kept as calls start and end, so a new call's limits cost the same
        #: whatever the number of live calls)
        self._active: set[str] = set()
        self._active_by_agent: collections.Counter[str] = collections.Counter()
        self._active_by_token: collections.Counter[str] = collections.Counter()

    # ------------------------------------------------------------------
    # bookkeeping
    # ------------------------------------------------------------------
    def _register(self, call: Call) -> None:
        self.calls[call.id] = call
        if not call.ended and call.id not in self._active:
            self._active.add(call.id)
            self._active_by_agent[call.agent] += 1
            self._active_by_token[call.token_name] += 1
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

    def _uncount(self, call: Call) -> None:
        """``call`` is no longer active (it ended, or is forgotten)."""
        if call.id in self._active:
            self._active.discard(call.id)
            for counter, key in ((self._active_by_agent, call.agent), (self._active_by_token, call.token_name)):
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]

    def active_for_agent(self, agent: str) -> int:
        """How many calls of ``agent`` are not yet ended (kept count: no walk over the calls)."""
        return self._active_by_agent.get(agent, 0)

    def active_calls(self, token_name: str | None = None) -> int:
        """How many calls are not yet ended: all of them, or (``token_name``
        given) those placed with that token (kept counts)."""
        return len(self._active) if token_name is None else self._active_by_token.get(token_name, 0)

    # ------------------------------------------------------------------
    # a call of an earlier run
    # ------------------------------------------------------------------
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
        self._uncount(call)
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
        self._uncount(call)
        self.calls.pop(call.id, None)
        for leg in call.legs():
            if self.by_channel.get(leg.channel_id) is call:
                self.by_channel.pop(leg.channel_id, None)
