"""Call events and their webhook deliveries, kept in the journal's database (SPEC §10).

Three tables beside the journal's own:

* ``events`` — one row per state change of a call, written **in the same
  transaction** as the change (:func:`add_events`, called by the journal's
  writes), so there is no state without its event and no event without
  its state. ``id`` is unique and increasing (SQLite ``AUTOINCREMENT``:
  never reused, and writes are serialised, so ids appear in commit order;
  PostgreSQL: a sequence, and the writers of events are serialised by a
  transaction advisory lock, :data:`EVENTS_LOCK`, so there too a reader
  resuming after an id never misses an event committed later);
* ``deliveries`` — one row per event and webhook endpoint, made by the
  delivery worker from the events (:meth:`Outbox.fan_out`) and kept until
  delivered or given up: a restart or a crash loses no pending delivery;
* ``outbox_cursor`` — the id of the last event already fanned out.

Plus ``call_callbacks``: a call's own ``status_callback`` URL.

Readers (the event stream, ``platforma-c2d events``, the delivery worker)
may run on any thread or in another process.
"""

from __future__ import annotations

import collections
import contextlib
import json
import threading
import time

import sqlalchemy as sa

from platforma_c2d.store.driver_sql import DriverStatement

metadata = sa.MetaData()

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(32), nullable=False, index=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("agent", sa.String(16), nullable=False, index=True),
    sa.Column("token_name", sa.String(64), nullable=False, default=""),
    sa.Column("call", sa.Text, nullable=False),
    sqlite_autoincrement=True,
)

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Integer, nullable=False),
    sa.Column("call_id", sa.String(32), nullable=False),
    sa.Column("endpoint", sa.String(80), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("status", sa.String(12), nullable=False, default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("last_error", sa.String(200), nullable=False, default=""),
    sa.Index("ix_deliveries_pending", "status", "endpoint", "call_id", "event_id"),
    sqlite_autoincrement=True,
)

outbox_cursor = sa.Table(
    "outbox_cursor", metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("event_id", sa.Integer, nullable=False),
)

call_callbacks = sa.Table(
    "call_callbacks", metadata,
    sa.Column("call_id", sa.String(32), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
)

PENDING, DELIVERED, GIVEN_UP = "pending", "delivered", "given_up"
#: the event of a change, written with it (compiled once per database, store/driver_sql.py)
_INSERT_EVENT = DriverStatement(events.insert(), ("call_id", "type", "at", "agent", "token_name", "call"))

# The delivery worker's statements, built once: each of its passes binds values only.
_NEWEST_EVENT = sa.select(sa.func.max(events.c.id))
_FAN_OUT_CURSOR = sa.select(outbox_cursor.c.event_id).where(outbox_cursor.c.name == "fan_out")
_TO_FAN_OUT = (sa.select(events, call_callbacks.c.url.label("callback_url"))
               .select_from(events.outerjoin(call_callbacks, call_callbacks.c.call_id == events.c.call_id))
               .where(events.c.id > sa.bindparam("cursor")).order_by(events.c.id)
               .limit(sa.bindparam("batch", type_=sa.Integer)))
_INSERT_DELIVERY = deliveries.insert()
_MOVE_CURSOR = (outbox_cursor.update().where(outbox_cursor.c.name == "fan_out")
                .values(event_id=sa.bindparam("cursor")))
_DELIVERED = (deliveries.update().where(deliveries.c.id.in_(sa.bindparam("ids", expanding=True)))
              .values(status=DELIVERED, attempts=deliveries.c.attempts + 1, last_error=""))


def _due_statement() -> sa.Select:
    """For each (endpoint, call) its oldest pending delivery if due at ``:now``, ranked
    within its (endpoint, URL) by id, at most ``:rank`` of each, oldest first, ``:fetch`` rows."""
    first = (sa.select(sa.func.min(deliveries.c.id).label("id"))
             .where(deliveries.c.status == PENDING)
             .group_by(deliveries.c.endpoint, deliveries.c.call_id).subquery())
    heads = (sa.select(deliveries.c.id, sa.func.row_number().over(
                 partition_by=(deliveries.c.endpoint, deliveries.c.url), order_by=deliveries.c.id)
                 .label("rank"))
             .join(first, first.c.id == deliveries.c.id)
             .where(deliveries.c.next_at <= sa.bindparam("now", type_=sa.Float))).subquery()
    return (sa.select(deliveries, events.c.type, events.c.at, events.c.call)
            .join(heads, heads.c.id == deliveries.c.id)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(heads.c.rank <= sa.bindparam("rank", type_=sa.Integer))
            .order_by(deliveries.c.id).limit(sa.bindparam("fetch", type_=sa.Integer)))


_DUE = _due_statement()


#: PostgreSQL advisory lock key taken (until the commit) by every transaction that stores an event.
EVENTS_LOCK = 0x0C2D0E7E
_LOCK_EVENTS = f"SELECT pg_advisory_xact_lock({EVENTS_LOCK})"


def add_event(conn: sa.Connection, resource: dict, at: str, token_name: str = "") -> None:
    """Store the event of a call that just changed state, on ``conn`` (the change's transaction).

    ``resource``: the call resource as the API returns it, after the change;
    ``at``: the change's time (ISO 8601 UTC). The type is ``call.<state>``.
    One event of :func:`add_events`.
    """
    add_events(conn, [(resource, at, token_name)])


def add_events(conn: sa.Connection, changes: list[tuple[dict, str, str]]) -> None:
    """Store the events of changes made on ``conn`` (their transaction), in this order, in one statement.

    ``changes``: ``(resource, at, token_name)`` for each, as :func:`add_event`
    takes them. On PostgreSQL the transaction first takes
    :data:`EVENTS_LOCK`: a sequence hands out ids in the order of the
    inserts, not of the commits, and two writers (the service, the FastAGI
    process, another instance) could otherwise commit ids 8 and 7 in that
    order, and a reader that had read 8 would never see 7.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_LOCK_EVENTS)
    _INSERT_EVENT.execute_many(conn, [
        {"call_id": resource["id"], "type": "call." + resource["state"], "at": at,
         "agent": resource["agent"], "token_name": token_name,
         "call": json.dumps(resource, separators=(",", ":"))}
        for resource, at, token_name in changes])


def add_callback(conn: sa.Connection, call_id: str, url: str) -> None:
    """Store a call's ``status_callback`` URL, on ``conn`` (the transaction of its first record)."""
    conn.execute(call_callbacks.insert().values(call_id=call_id, url=url))


def event_dict(row) -> dict:
    """The event of SPEC §10 from its row: ``{"id", "type", "at", "call"}``."""
    return {"id": row["id"], "type": row["type"], "at": row["at"], "call": json.loads(row["call"])}


def event_json(row) -> bytes:
    """The event as compact JSON bytes: the body of a webhook and the data of a stream line.

    The call is put in as stored (compact JSON, :func:`add_events`), not
    parsed and written again: the same bytes, for less work per delivery.
    """
    return b'{"id":%d,"type":%s,"at":%s,"call":%s}' % (
        row["id"], json.dumps(row["type"]).encode(), json.dumps(row["at"]).encode(), row["call"].encode())


class Outbox:
    """Reads of the events, and the deliveries' bookkeeping, on the journal's engine.

    ``engine``: the SQLAlchemy engine of the journal (``Journal.engine``).
    Every method opens its own short transaction; raises
    ``sqlalchemy.exc.SQLAlchemyError``.
    """

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        #: the fan-out cursor as last read or moved by :meth:`fan_out` (None: not yet)
        self._fanned_to: int | None = None

    # --- events --------------------------------------------------------------
    def read(self, after: int = 0, limit: int = 100, call_id: str | None = None,
             agents: tuple[str, ...] = ()) -> list[dict]:
        """Event rows with ``id > after``, oldest first, at most ``limit``; optionally of one call
        and of some agents only."""
        query = sa.select(events).where(events.c.id > after)
        if call_id:
            query = query.where(events.c.call_id == call_id)
        if agents:
            query = query.where(events.c.agent.in_(agents))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query.order_by(events.c.id).limit(limit)).mappings()]

    def last_id(self) -> int:
        """The id of the newest event (0 when there is none)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0

    # --- deliveries ------------------------------------------------------------
    def fan_out(self, endpoints_for, batch: int = 500, delivered: list[int] | tuple[int, ...] = ()
                ) -> tuple[int, int]:
        """Make the delivery rows of the events not yet fanned out; returns
        ``(events fanned out, delivery rows made)``. ``delivered``: ids of
        deliveries answered 2xx, marked as :meth:`delivered` does, in the same
        transaction (one commit for the worker's pass).

        ``endpoints_for(event_row, callback_url)`` returns ``[(endpoint name, url), ...]``
        for one event (``callback_url``: the call's ``status_callback`` or None). The rows
        and the cursor move in one transaction: after a crash, an event is
        fanned out exactly once. While the newest event is not past the
        cursor as last seen (the cursor only moves forward), this is one
        short read and no transaction: the pass of an idle worker.
        """
        if self._fanned_to is not None and not delivered:
            with self.engine.connect() as conn:
                if (conn.execute(_NEWEST_EVENT).scalar() or 0) <= self._fanned_to:
                    return 0, 0
        now = time.time()
        with self._bookkeeping() as conn:
            if delivered:
                conn.execute(_DELIVERED, {"ids": list(delivered)})
            cursor = conn.execute(_FAN_OUT_CURSOR).scalar()
            if cursor is None:
                conn.execute(outbox_cursor.insert().values(name="fan_out", event_id=0))
                cursor = 0
            rows = conn.execute(_TO_FAN_OUT, {"cursor": cursor, "batch": batch}).mappings().all()
            if not rows:
                self._fanned_to = cursor
                return 0, 0
            new = [{"event_id": r["id"], "call_id": r["call_id"], "endpoint": name, "url": url,
                    "status": PENDING, "attempts": 0, "created_at": now, "next_at": now, "last_error": ""}
                   for r in rows for name, url in endpoints_for(r, r["callback_url"])]
            if new:
                conn.execute(_INSERT_DELIVERY, new)
            conn.execute(_MOVE_CURSOR, {"cursor": rows[-1]["id"]})
        self._fanned_to = rows[-1]["id"]
        return len(rows), len(new)

    def due(self, now: float, busy: set[tuple[str, str]], limit: int = 100, *,
            per_target: int | None = None, full: frozenset[str] | set[str] = frozenset(),
            full_urls: frozenset[tuple[str, str]] | set[tuple[str, str]] = frozenset()) -> list[dict]:
        """Deliveries to attempt now: for each (endpoint, call) its oldest pending one, if due.

        In order per call per endpoint: a later event waits until the one
        before it is delivered or given up. ``busy``: (endpoint, call id)
        pairs with a delivery in flight, skipped. Each row carries the event.

        So that one receiver's backlog cannot fill the page and hold back
        every other receiver (SPEC §10): ``full`` names endpoints that may
        start nothing now (left out), ``full_urls`` (endpoint, URL prefix)
        pairs likewise (calls' own URLs on one host), and ``per_target``
        keeps at most that many rows per endpoint and URL (the oldest).

        One statement, built once (:data:`_DUE`), ranks the rows in SQL,
        where a busy pair may hold one of the first places of its URL: it
        reads ``per_target + len(busy)`` of each, then leaves out here the
        rows of ``busy``, ``full`` and ``full_urls`` and keeps ``per_target``
        of each URL, reading the page again, larger, while rows left out
        took places in it.
        """
        rank = min(2 ** 31 - 1, per_target + len(busy)) if per_target is not None else 2 ** 31 - 1
        fetch = limit + len(busy)
        with self.engine.connect() as conn:
            while True:
                rows = conn.execute(_DUE, {"now": now, "rank": rank, "fetch": fetch}).mappings().all()
                out, kept = [], collections.Counter()
                for row in rows:
                    if not self._startable(row, busy, full, full_urls):
                        continue
                    key = (row["endpoint"], row["url"])
                    if per_target is not None and kept[key] >= per_target:
                        continue
                    kept[key] += 1
                    out.append(dict(row))
                    if len(out) == limit:
                        return out
                if len(rows) < fetch:
                    return out
                fetch *= 2

    @staticmethod
    def _startable(row, busy, full, full_urls) -> bool:
        endpoint = row["endpoint"]
        if endpoint in full or (endpoint, row["call_id"]) in busy:
            return False
        return not any(endpoint == name and row["url"].startswith(prefix) for name, prefix in full_urls)

    def delivered(self, *delivery_ids: int) -> None:
        """A 2xx came back for each of these deliveries: they are done (one transaction)."""
        if delivery_ids:
            with self._bookkeeping() as conn:
                conn.execute(_DELIVERED, {"ids": list(delivery_ids)})

    def retry(self, delivery_id: int, next_at: float, error: str) -> None:
        """The attempt failed: try again at ``next_at`` (Unix seconds)."""
        self._set(delivery_id, attempts=deliveries.c.attempts + 1, next_at=next_at, last_error=error[:200])

    def give_up(self, delivery_id: int, error: str) -> None:
        """The delivery kept failing for the whole retry period: it is given up."""
        self._set(delivery_id, status=GIVEN_UP, attempts=deliveries.c.attempts + 1, last_error=error[:200])

    def _set(self, delivery_id: int, **values) -> None:
        with self._bookkeeping() as conn:
            conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(**values))

    @contextlib.contextmanager
    def _bookkeeping(self):
        """A transaction of the deliveries' bookkeeping, committed without waiting for the disk.

        Its rows are made again from the events (the fan-out's rows and its
        cursor, lost together), or its deliveries sent again (a mark), when
        a crash of the machine loses its last commits: at least once, as
        promised, and the events themselves stay as durable as the journal
        (decision 0022). SQLite: ``synchronous=NORMAL`` on the connection
        for this transaction only (WAL: no fsync at the commit; the pool's
        connection gets the journal's ``FULL`` back, or is dropped);
        PostgreSQL: ``SET LOCAL synchronous_commit = off``.
        """
        with self.engine.connect() as conn:
            if conn.dialect.name != "sqlite":
                with conn.begin():
                    if conn.dialect.name == "postgresql":
                        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                    yield conn
                return
            conn.exec_driver_sql("PRAGMA synchronous=NORMAL")   # not within a transaction
            conn.commit()
            try:
                with conn.begin():
                    yield conn
            finally:
                try:
                    conn.exec_driver_sql("PRAGMA synchronous=FULL")
                    conn.commit()
                except Exception:
                    conn.invalidate()       # never back in the pool with NORMAL
                    raise

    def backlog(self) -> tuple[int, float]:
        """(pending deliveries, age of the oldest in seconds; 0 when none)."""
        with self.engine.connect() as conn:
            count, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(deliveries.c.created_at))
                                         .where(deliveries.c.status == PENDING)).one()
        return count, (max(0.0, time.time() - oldest) if oldest is not None else 0.0)


class EventFeed:
    """Tells event streams that new events are in the store, for any number of streams.

    One thread (``event-feed``, started with the first stream) looks at the
    newest event id every ``poll_s`` seconds and wakes the waiting streams;
    each stream then reads the store itself. Open streams cost the
    telephony thread nothing, and the store one cheap query per poll
    whatever their number. At most ``max_streams`` at once, and at most
    ``max_per_holder`` of them for one holder (a token; 0 = no cap of its
    own), so that one token cannot hold every stream (:meth:`acquire`).
    """

    def __init__(self, outbox: Outbox, max_streams: int, poll_s: float = 0.2, max_per_holder: int = 0):
        self.outbox, self.max_streams, self.poll_s = outbox, max_streams, poll_s
        self.max_per_holder = max_per_holder
        self.last_id = 0
        self.streams = 0
        self._held: dict[str, int] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def acquire(self, holder: str | None = None) -> str | None:
        """Count one more open stream of ``holder`` (a token's name; None: no
        holder, only the service's cap applies).

        Returns None when counted, else the cap that refuses it:
        ``"service"`` (``max_streams`` open already) or ``"token"``
        (``max_per_holder`` of ``holder``'s open already).
        """
        with self._cond:
            if self.streams >= self.max_streams:
                return "service"
            if holder is not None and self.max_per_holder and self._held.get(holder, 0) >= self.max_per_holder:
                return "token"
            self.streams += 1
            if holder is not None:
                self._held[holder] = self._held.get(holder, 0) + 1
            if self._thread is None:
                self.last_id = self.outbox.last_id()
                self._thread = threading.Thread(target=self._watch, name="event-feed", daemon=True)
                self._thread.start()
            return None

    def release(self, holder: str | None = None) -> None:
        """A stream of ``holder`` (as given to :meth:`acquire`) ended."""
        with self._cond:
            self.streams -= 1
            if holder is not None and (left := self._held.get(holder, 0) - 1) > 0:
                self._held[holder] = left
            else:
                self._held.pop(holder, None)

    def wait(self, seen: int, timeout_s: float) -> int:
        """Block until an event newer than ``seen`` is stored or ``timeout_s`` passed;
        returns the newest id known."""
        with self._cond:
            self._cond.wait_for(lambda: self.last_id > seen, timeout_s)
            return self.last_id

    def _watch(self) -> None:
        while True:
            time.sleep(self.poll_s)
            try:
                newest = self.outbox.last_id()
            except Exception:  # noqa: BLE001 - the store is busy or away: the next poll tries again
                continue
            if newest > self.last_id:
                with self._cond:
                    self.last_id = newest
                    self._cond.notify_all()
