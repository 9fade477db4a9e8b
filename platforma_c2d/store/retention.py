"""``[store] retention_days``: the journal does not grow for ever.

Every call and every change of state is journalled (SPEC §9); a contact
centre makes thousands a day. :class:`Retention` removes calls that ended
more than ``retention_days`` ago, with their history (``call_events``),
their stored events and finished webhook deliveries (``store/outbox.py``)
and Idempotency-Key claims as old (``store/idempotency.py``),
in small batches, each its own short transaction, from a thread of its own
(:class:`RetentionThread`): the journal's writer waits at most one batch
for the database, never for the whole purge.

Kept whatever their age: calls not ended, and calls with an event not yet
fanned out to webhooks or a delivery still pending (an integrator must not
lose an event because it was down for longer than the retention).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

import sqlalchemy as sa

from platforma_c2d.calls.model import iso, utcnow
from platforma_c2d.store import idempotency
from platforma_c2d.store.journal import call_events, calls
from platforma_c2d.store.outbox import PENDING, call_callbacks, deliveries, events, outbox_cursor

log = logging.getLogger("platforma_c2d.store")


class Retention:
    """Removes ended calls older than ``days`` from the journal at ``engine``.

    ``days``: the retention, in days (> 0); ``batch``: calls removed per
    transaction. Raises ``sqlalchemy.exc.SQLAlchemyError`` from
    :meth:`purge_batch` when the database fails.
    """

    def __init__(self, engine: sa.Engine, days: int, batch: int = 500):
        self.engine, self.days, self.batch = engine, days, batch

    def cutoff(self, now: datetime | None = None) -> str:
        """The ``ended_at`` (ISO 8601 UTC) before which a call is removed."""
        return iso((now or utcnow()) - timedelta(days=self.days))

    def purge_batch(self, now: datetime | None = None) -> int:
        """Remove at most ``batch`` old ended calls and what belongs to them; returns how many.

        One transaction. The oldest go first (index ``ix_calls_ended_at``).
        """
        cutoff = self.cutoff(now)
        with self.engine.begin() as conn:
            cursor = conn.execute(sa.select(outbox_cursor.c.event_id)
                                  .where(outbox_cursor.c.name == "fan_out")).scalar()
            # ended_at is set exactly when a call ends; a condition on the
            # state as well would make SQLite pick the state index (nearly
            # every row is "ended") and sort the whole table.
            query = (sa.select(calls.c.id)
                     .where(calls.c.ended_at < cutoff)
                     .where(~sa.exists().where(deliveries.c.call_id == calls.c.id,
                                               deliveries.c.status == PENDING)))
            if cursor is not None:   # webhooks are fanned out: keep what is not yet
                query = query.where(~sa.exists().where(events.c.call_id == calls.c.id,
                                                       events.c.id > cursor))
            ids = conn.execute(query.order_by(calls.c.ended_at).limit(self.batch)).scalars().all()
            idempotency.purge(conn, cutoff)   # claims as old as the calls removed
            if not ids:
                return 0
            for table in (call_events, events, deliveries, call_callbacks):
                conn.execute(table.delete().where(table.c.call_id.in_(ids)))
            conn.execute(calls.delete().where(calls.c.id.in_(ids)))
        return len(ids)

    def purge(self, stop: threading.Event | None = None, pause_s: float = 0.05) -> int:
        """Remove every old ended call, batch after batch (``pause_s`` between two,
        so other writers get the database); returns how many. Stops early when
        ``stop`` is set."""
        total = 0
        while not (stop and stop.is_set()):
            n = self.purge_batch()
            total += n
            if n < self.batch:
                break
            if stop is not None:
                stop.wait(pause_s)
        return total


class RetentionThread:
    """Runs :meth:`Retention.purge` every ``every_s`` seconds on a daemon thread.

    A failing purge is logged and tried again next time; it never stops the
    service. ``stop()`` ends the thread (within one batch).
    """

    def __init__(self, retention: Retention, every_s: float = 300.0):
        self.retention, self.every_s = retention, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="journal-retention", daemon=True)

    def start(self) -> None:
        """Start the thread (the first purge runs at once)."""
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                n = self.retention.purge(self._stop)
                if n:
                    log.info("journal retention: %d calls ended over %d days ago removed",
                             n, self.retention.days)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("journal retention failed (tried again in %.0f s): %s",
                            self.every_s, type(exc).__name__)
            self._stop.wait(self.every_s)

    def stop(self) -> None:
        """Stop the thread and wait for it (at most 10 s). Idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
