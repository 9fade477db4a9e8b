"""The journal's one writing thread (decision 0004): group commits for the service's event loop.

The event loop never runs SQL itself: it hands each snapshot of a call to
the :class:`JournalWriter`, which commits whatever has queued up in one
transaction and tells each waiter when its record is on disk (SPEC §9).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from concurrent.futures import Future

from platforma_c2d.calls.model import Call
from platforma_c2d.store.journal import Journal

log = logging.getLogger("platforma_c2d.store")

_STOP = object()


class JournalWriter:
    """The journal's one writing thread, for the service's event loop (SPEC §9).

    ``submit`` takes a snapshot of a call at once and returns a
    ``concurrent.futures.Future`` that resolves (``None``) when that record
    is committed, or fails with the database's exception. The thread writes
    in the order records were submitted, everything queued at that moment
    in one transaction (group commit, at most ``max_batch`` records), so the
    event loop never waits on SQL or on an fsync, and a burst of calls
    costs one commit instead of one each. A batch the database refuses is
    retried record by record, so one bad record loses no other.

    ``journal``: the :class:`Journal` written to; ``max_batch``: records
    per transaction (count).
    """

    def __init__(self, journal: Journal, max_batch: int = 256):
        self.journal, self.max_batch = journal, max_batch
        self.commits = 0          # transactions committed (count)
        self.records = 0          # records committed (count)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="journal", daemon=True)
        self._thread.start()

    def submit(self, call: Call, detail: str = "", *, idempotency_key: str | None = None,
               request_hash: str | None = None, status_callback: str | None = None) -> Future:
        """Queue the call's state now and one event row; returns the commit's future.

        Raises ``RuntimeError`` after :meth:`close`.
        """
        record = Journal.snapshot(call, detail, idempotency_key=idempotency_key,
                                  request_hash=request_hash, status_callback=status_callback)
        done: Future = Future()
        with self._lock:   # nothing is queued behind the stop mark
            if self._closed:
                raise RuntimeError("the journal writer is closed")
            self._queue.put((record, done))
        return done

    def flush(self) -> Future:
        """A future that resolves once every record submitted before it is committed (or failed)."""
        done: Future = Future()
        with self._lock:
            if not self._closed:
                self._queue.put((None, done))
                return done
        self._thread.join()   # closed: everything queued is written once the thread ends
        done.set_result(None)
        return done

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop the thread (waits up to ``timeout_s`` seconds). Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put((_STOP, None))
        self._thread.join(timeout_s)

    @staticmethod
    def _settle(done: Future, exc: BaseException | None = None) -> None:
        if done.set_running_or_notify_cancel():   # False: the waiter gave up; nothing to tell
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)

    def _run(self) -> None:
        # One connection for the thread's life: no pool checkout and reset per
        # batch. A connection the database dropped is replaced on its next use.
        self._conn = None
        try:
            self._loop()
        finally:
            if self._conn is not None:
                self._conn.close()

    def _connection(self):
        if self._conn is None:
            self._conn = self.journal.engine.connect()
        return self._conn

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [(rec, done) for rec, done in batch if isinstance(rec, dict)]
            if records:
                self._write(records)
            for rec, done in batch:
                if rec is None:
                    self._settle(done)
            if any(rec is _STOP for rec, _ in batch):
                return

    def _write(self, records: list) -> None:
        try:
            self.journal.write([rec for rec, _ in records], self._connection())
        except Exception:  # noqa: BLE001 - retried one by one below
            if len(records) > 1:
                for one in records:
                    self._write([one])
                return
            log.exception("cannot write the journal (call %s)", records[0][0]["row"]["id"])
            self._settle(records[0][1], sys.exc_info()[1])
            return
        self.commits += 1
        self.records += len(records)
        for _, done in records:
            self._settle(done)
