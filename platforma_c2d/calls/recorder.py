"""The one object that records a change of a call: journal (with its event), log line, metrics.

The engine and the Stasis app never write the journal, a call's log line
or its counters themselves: they tell the :class:`Recorder` what changed.
The journal stores the change and, when the state changed, its event
(SPEC §10) in the same transaction (``store/journal.py``, ``store/outbox.py``),
so the event outbox is complete for every origin; the FastAGI server's
writes go through the same journal methods.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future

from platforma_c2d.calls.model import Call
from platforma_c2d.metrics import Metrics
from platforma_c2d.store.writer import JournalWriter

log = logging.getLogger("platforma_c2d.calls")


def _consume(done: Future) -> None:
    """Mark a journal future's exception as seen (the writer has logged it)."""
    if not done.cancelled():
        done.exception()


def call_context(call: Call) -> dict:
    """The fields every log line about ``call`` carries."""
    return {"call_id": call.id, "call_ref": call.call_ref, "origin": call.origin.value}


class Recorder:
    """Records changes of calls on the telephony thread.

    ``writer``: the journal's writing thread (decision 0004); ``metrics``:
    the service's counters. Nothing here waits on SQL: each method returns
    the commit's ``concurrent.futures.Future`` (a failed write is logged by
    the writer; awaiting the future raises it).
    """

    def __init__(self, writer: JournalWriter, metrics: Metrics):
        self.writer, self.metrics = writer, metrics
        #: call id -> when its current setup step began (``time.monotonic``)
        self._step_began: dict[str, float] = {}

    def record(self, call: Call, detail: str, **kw) -> Future:
        """Journal ``call`` as it is now (and its event, if its state changed); one log line.

        ``detail``: why it changed (journal text); ``kw``: ``idempotency_key``,
        ``request_hash`` of a call's first record.
        """
        done = self.writer.submit(call, detail, **kw)
        done.add_done_callback(_consume)
        log.info("%s: %s", call.state.value, detail, extra=call_context(call))
        return done

    def started(self, call: Call, detail: str, **kw) -> Future:
        """A new call was accepted: its first record, counted as started and active."""
        self.metrics.calls_started.labels(call.origin.value).inc()
        self.metrics.active.inc()
        return self.record(call, detail, **kw)

    def step_begins(self, call: Call) -> None:
        """A setup step of ``call`` begins now: the agent is dialled (or a call taken back)."""
        self._step_began[call.id] = time.monotonic()

    def step_done(self, call: Call, step: str) -> None:
        """A setup step of ``call`` is done (``agent_answer``, ``callee_answer``,
        ``bridge``): its time since the step began is observed in seconds
        (``c2d_setup_seconds{step}``), and the next step begins now."""
        now = time.monotonic()
        self.metrics.setup.labels(step).observe(now - self._step_began.get(call.id, now))
        self._step_began[call.id] = now

    def resumed(self, call: Call, adopted: bool) -> None:
        """A call of an earlier run was taken back after a restart (counted active again);
        ``adopted``: it goes on as it stands (logged), rather than ending at once."""
        self.metrics.active.inc()
        self.step_begins(call)
        if adopted:
            log.info("call adopted after a restart", extra=call_context(call))

    def carrier_refused(self, sip_code: int) -> None:
        """The carrier refused a leg on the trunk with ``sip_code`` (5xx; SPEC §3.8)."""
        self.metrics.trunk_refused.labels(str(sip_code)).inc()

    def ended(self, call: Call, detail: str, *, was_active: bool = True) -> Future:
        """``call`` has ended (``call.reason`` set): its last record, counted by reason.

        ``was_active``: it was counted started and active. A call refused
        before it started (``False``) is counted started and ended at once,
        so that started minus ended is always the number of active calls.
        """
        self._step_began.pop(call.id, None)
        self.metrics.calls_ended.labels(call.origin.value, call.reason.value).inc()
        if was_active:
            self.metrics.active.dec()
        else:
            self.metrics.calls_started.labels(call.origin.value).inc()
        return self.record(call, detail)
