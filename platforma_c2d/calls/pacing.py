"""The trunk's call rate: legs that leave through the trunk go out paced,
in order and for a bounded time (SPEC §3.8, field report C38).

A carrier that allows N new calls per second answers the N+1st with ``503``
(often with ``Retry-After``) or ``500``. Sending everything at once and
reading those refusals as congestion loses calls; so every leg dialled
through ``[dial] trunk_endpoint`` (callee legs, external agents) first takes
a slot from :class:`TrunkPacer`:

* slots are at least ``1 / max_calls_per_second`` apart, given in the order
  they were asked for (first come, first served);
* the carrier counts INVITEs on the wire, not our requests to Asterisk: a
  busy Asterisk can sit on originates handed to it a second apart and then
  dial them all in the same instant. So the next slot is counted from the
  moment the last leg's trunk channel was *seen dialled* (:meth:`TrunkPacer.sent`,
  the ``Dial`` event of the leg's trunk channel), not from the slot: no slot
  is given while the last leg is still on its way to the trunk, and none
  sooner than one interval after it left. The rate on the wire is then at
  most the configured one, whatever Asterisk's delays (a leg's own trip
  from our request to its ``Dial``, tens of milliseconds, comes on top of
  the interval);
* after the carrier refused a leg with ``503``, no slot is given before the
  hold it asked for has passed (:meth:`TrunkPacer.hold`);
* a leg that would wait longer than ``max_wait_s`` is refused at once
  (:class:`TrunkBusy`): the caller ends it as ``callee_unavailable`` with a
  clear detail rather than let the agent listen to ringing for ever.

Everything runs on the telephony loop (docs/decisions/0002): no locks.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class TrunkBusy(Exception):
    """A leg cannot go out through the trunk within ``max_wait_s``.

    ``detail``: why, in words for the journal (rate or carrier hold)."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


@dataclass
class _Ticket:
    deadline: float
    leg: str | None
    future: asyncio.Future = field(repr=False)


#: Longest the pacer waits to see the last leg's trunk channel dialled before it
#: counts the leg as gone out anyway (an event lost with a dropped ARI socket),
#: seconds. Every leg reports long before: dialled, refused, or ended.
SENT_REPORT_TIMEOUT_S = 10.0


class TrunkPacer:
    """Paces the legs of one trunk.

    ``max_calls_per_second``: new legs per second at most (0 = no pacing,
    only carrier holds apply); ``max_wait_s``: longest a leg may wait for
    its slot, seconds; ``hold_after_503_s``: how long the engine holds the
    trunk after the carrier's 503 (0 = no hold); ``clock``: monotonic seconds (tests pass their own);
    ``on_waiting``: called with the number of legs waiting whenever it
    changes (the ``c2d_trunk_legs_waiting`` gauge).

    A leg asks with its channel id (``leg``); once given its slot, the next
    slot waits until :meth:`sent` says that leg's trunk channel was dialled
    (or that it never will be), then one interval more.
    """

    def __init__(self, max_calls_per_second: float = 0.0, max_wait_s: float = 5.0,
                 hold_after_503_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 on_waiting: Callable[[int], None] | None = None):
        self.interval = 1.0 / max_calls_per_second if max_calls_per_second > 0 else 0.0
        self.max_wait_s = max_wait_s
        self.hold_after_503_s = hold_after_503_s
        self.clock = clock
        self.on_waiting = on_waiting or (lambda n: None)
        self.held_until = 0.0
        self.refusals = None   # a hep.RetryAfterLog when [trunk] hep_listen is set (use_capture)
        # Refusals held for hold_after_503_s before the capture reported them:
        # number → (when, held_until before, held_until after).
        self._unconfirmed: dict[str, tuple[float, float, float]] = {}
        self._next_free = 0.0
        #: the leg given the last slot, not yet seen dialled, and until when we wait for it
        self._sending: str | None = None
        self._sending_until = 0.0
        self._queue: collections.deque[_Ticket] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None

    # ------------------------------------------------------------------
    def _due(self, now: float) -> float:
        """When the next slot comes, at the earliest (the last leg, if still on its
        way to the trunk, counted as leaving now)."""
        if self._sending is not None and now >= self._sending_until:
            log.warning("leg %s was not seen dialled through the trunk within %g s: "
                        "counted as gone out", self._sending, SENT_REPORT_TIMEOUT_S)
            self._left(now)
        due = max(self._next_free, self.held_until)
        return due if self._sending is None else max(due, now + self.interval)

    def _left(self, now: float) -> None:
        self._sending = None
        self._next_free = max(self._next_free, now + self.interval)

    def _why(self, now: float) -> str:
        if self.held_until > now:
            return (f"the carrier refused a call with 503 and the trunk is held for "
                    f"{self.held_until - now:.1f} s more, longer than [trunk] max_wait_s "
                    f"({self.max_wait_s:g} s)")
        return (f"the trunk's call rate ([trunk] max_calls_per_second) leaves no slot "
                f"within [trunk] max_wait_s ({self.max_wait_s:g} s)")

    def _take(self, now: float, leg: str | None) -> None:
        self._next_free = max(now, self._next_free) + self.interval
        if leg is not None and self.interval > 0:
            self._sending, self._sending_until = leg, now + SENT_REPORT_TIMEOUT_S

    def sent(self, leg: str) -> None:
        """The trunk channel of ``leg`` (a channel id given to :meth:`ask`) was dialled,
        or the leg will never reach the trunk (refused by Asterisk, ended): the
        next slot comes one interval from now at the earliest. Any other id: nothing."""
        if leg == self._sending:
            self._left(self.clock())
            if self._wake is not None:
                self._wake.set()

    @property
    def waiting(self) -> int:
        """Legs waiting for a slot now."""
        return sum(1 for t in self._queue if not t.future.done())

    def ask(self, leg: str | None = None) -> asyncio.Future | None:
        """Ask for a slot for one leg, now; the place in line is kept from this call on.

        ``leg``: the leg's channel id, which :meth:`sent` names once its
        trunk channel is dialled (None: nothing will be reported, the slot
        alone counts). Returns None when the leg may go out at once, else a
        future to hand to :meth:`wait`. Raises :class:`TrunkBusy` when the
        slot would come later than ``max_wait_s`` from now (the leg would
        only wait to be refused). Must run on the event loop.
        """
        now = self.clock()
        if not self._queue and self._due(now) <= now and self._sending is None:
            self._take(now, leg)
            return None
        if self._last_due() - now > self.max_wait_s:
            raise TrunkBusy(self._why(now))
        loop = asyncio.get_running_loop()
        ticket = _Ticket(now + self.max_wait_s, leg, loop.create_future())
        self._queue.append(ticket)
        self.on_waiting(self.waiting)
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._serve())
        return ticket.future

    def _last_due(self) -> float:
        """When a leg asking now would get its slot, counting those already waiting
        (the last leg's Dial, if not seen yet, counted as at its slot: an estimate
        for refusing at once; the worker still refuses a ticket past its deadline)."""
        return max(self._next_free + self.interval * self.waiting, self.held_until)

    async def wait(self, place: asyncio.Future) -> None:
        """Wait for the slot ``place`` (from :meth:`ask`) stands for.

        Returns when the leg may be dialled; raises :class:`TrunkBusy` if a
        carrier's hold that came meanwhile pushes the slot past its
        ``max_wait_s``. Cancelling the awaiting task gives the place up.
        """
        try:
            await place
        finally:
            if not place.done():
                place.cancel()
            self.on_waiting(self.waiting)

    async def acquire(self, leg: str | None = None) -> None:
        """:meth:`ask`, then :meth:`wait` if the leg must wait (same arguments and errors)."""
        place = self.ask(leg)
        if place is not None:
            await self.wait(place)

    def use_capture(self, refusals) -> None:
        """Read the carrier's Retry-After from ``refusals`` (a :class:`hep.RetryAfterLog`)."""
        self.refusals = refusals
        refusals.late = self._late_refusal

    def hold_after_503(self, number: str) -> tuple[float, str]:
        """The carrier refused the leg to ``number`` with 503: hold the trunk.

        For the carrier's ``Retry-After`` when Asterisk's capture reported
        one (:attr:`refusals`, :mod:`platforma_c2d.calls.hep`), else for
        ``hold_after_503_s`` — until the capture, if it comes a little after
        the leg's hangup report (a busy Asterisk), says otherwise
        (:meth:`_late_refusal`). Returns ``(seconds, where from)`` for the
        journal; ``(0, ...)``: no hold."""
        seen, said = self.refusals.take(number) if self.refusals is not None else (False, None)
        if said is not None:
            seconds, source = said, "the carrier's Retry-After"
        else:
            seconds, source = self.hold_after_503_s, "[trunk] hold_after_503_s"
        before = self.held_until
        if seconds > 0:
            self.hold(seconds)
        if self.refusals is not None and not seen:
            now = self.clock()
            self._unconfirmed = {n: u for n, u in self._unconfirmed.items() if now - u[0] <= self.refusals.keep_s}
            self._unconfirmed[number] = (now, before, self.held_until)
        return seconds, source

    def _late_refusal(self, number: str, retry_after_s: float | None) -> bool:
        """The capture of a refusal already held for ``hold_after_503_s``: hold for the
        carrier's Retry-After instead, counted from the refusal (shorter or longer),
        unless another refusal moved the hold since. True when it was such a refusal."""
        found = self._unconfirmed.pop(number, None)
        if found is None or self.refusals is None or self.clock() - found[0] > self.refusals.keep_s:
            return False
        at, before, fallback_until = found
        if retry_after_s is not None:
            wanted = max(before, at + retry_after_s)
            self.held_until = wanted if self.held_until == fallback_until else max(self.held_until, wanted)
            log.info("carrier's Retry-After for %s came after its hangup report: trunk held %.1f s "
                     "from the refusal instead of %g s", number, self.held_until - at, self.hold_after_503_s)
            if self._wake is not None:
                self._wake.set()
        return True

    def hold(self, seconds: float) -> None:
        """The carrier refused a leg with 503: no new leg for ``seconds`` (its Retry-After)."""
        self.held_until = max(self.held_until, self.clock() + seconds)
        if self._wake is not None:
            self._wake.set()

    async def _serve(self) -> None:
        """Hand slots out to waiting legs, first come first served, until none waits."""
        while self._queue:
            ticket = self._queue[0]
            if ticket.future.done():       # given up (the call ended)
                self._queue.popleft()
                continue
            now = self.clock()
            due = self._due(now)
            if due > ticket.deadline:
                self._queue.popleft()
                ticket.future.set_exception(TrunkBusy(self._why(now)))
                continue
            if due <= now and self._sending is None:
                self._queue.popleft()
                self._take(now, ticket.leg)
                ticket.future.set_result(None)
                continue
            self._wake.clear()
            # Until the slot, or until the last leg is reported (or its report times out).
            until = due if self._sending is None else min(self._sending_until, ticket.deadline)
            try:
                await asyncio.wait_for(self._wake.wait(), max(until - now, 0.0))
            except TimeoutError:
                pass
