"""The call journal: every call attempt, every state change, on disk (SPEC §9).

SQLAlchemy Core over any database it supports; SQLite by default (WAL mode,
``synchronous=FULL`` so a committed state change survives a crash of the
process or the machine). Two tables:

* ``calls`` — one row per call, the current state (what the API returns);
* ``call_events`` — one row per change (state, reason, detail), append-only.

Each change of state also stores its event (``store/outbox.py``) in the
same transaction (SPEC §10).

The service's event loop never writes itself: it hands snapshots of its
calls to a ``JournalWriter`` thread (``store/writer.py``), which commits whatever has queued
up in one transaction (group commit) and tells each waiter when its record
is on disk. Reads (``get``, ``list``) may come from any thread.
"""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from platforma_c2d.calls.model import Call, State, call_resource, iso, utcnow
from platforma_c2d.store import outbox, schema
from platforma_c2d.store.batch import HISTORY_FIELDS, BatchStatements, Committed, row_params, write_batch
from platforma_c2d.store.driver_sql import DriverStatement
from platforma_c2d.store.files import prepare_sqlite_file

metadata = sa.MetaData()

calls = sa.Table(
    "calls", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("origin", sa.String(8), nullable=False),
    sa.Column("agent", sa.String(16), nullable=False),
    sa.Column("callee", sa.String(16), nullable=False),
    sa.Column("outbound_id", sa.String(16), nullable=False),
    sa.Column("clid", sa.String(16), nullable=False),
    sa.Column("call_ref", sa.String(230), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("reason", sa.String(24)),
    sa.Column("ended_by", sa.String(8)),
    sa.Column("created_at", sa.String(32), nullable=False, index=True),
    sa.Column("answered_at", sa.String(32)),
    sa.Column("ended_at", sa.String(32)),
    sa.Column("updated_at", sa.String(32)),
    sa.Column("duration_s", sa.Float, nullable=False, default=0.0),
    sa.Column("cause", sa.Integer),
    sa.Column("sip_code", sa.Integer),
    sa.Column("agent_channel", sa.String(80)),
    sa.Column("callee_channel", sa.String(80)),
    sa.Column("bridge_id", sa.String(80)),
    sa.Column("token_name", sa.String(64), nullable=False, default=""),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("request_hash", sa.String(64)),
    # [cluster] node: the node whose instance placed or took the call (NULL: one node)
    sa.Column("node", sa.String(32)),
    sa.Index("ix_calls_idem", "token_name", "idempotency_key"),
    sa.Index("ix_calls_agent_state", "agent", "state"),
    # The list (GET /click2dial/calls): newest first with its cursor, and its filters.
    sa.Index("ix_calls_created_id", "created_at", "id"),
    sa.Index("ix_calls_call_ref", "call_ref", "created_at"),
    sa.Index("ix_calls_updated", "updated_at"),
    # recovery: a browser's channel found in the app after a restart
    sa.Index("ix_calls_agent_channel", "agent_channel"),
    # [store] retention_days: the oldest ended calls first (store/retention.py)
    sa.Index("ix_calls_ended_at", "ended_at"),
)

call_events = sa.Table(
    "call_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(32), nullable=False, index=True),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(24)),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)

_ROW_FIELDS = ("id", "origin", "agent", "callee", "outbound_id", "clid", "call_ref", "state",
               "reason", "ended_by", "created_at", "answered_at", "ended_at", "updated_at", "duration_s",
               "agent_channel",
               "callee_channel", "bridge_id", "token_name", "cause", "sip_code")
_UPDATE_CALL = (calls.update().where(calls.c.id == sa.bindparam("p_id"))
                .values({k: sa.bindparam("p_" + k) for k in _ROW_FIELDS if k != "id"}))
_UPDATE_OPEN_CALL = DriverStatement(_UPDATE_CALL.where(calls.c.state != "ended"))
_INSERT_EVENT = DriverStatement(call_events.insert(), HISTORY_FIELDS)
_BATCH = BatchStatements(calls, call_events, _UPDATE_CALL, _ROW_FIELDS)
#: calls whose last state the journal remembers (``Journal.write``); past it, it forgets them all
_KNOWN_MAX = 100_000

log = logging.getLogger("platforma_c2d.store")

_OPEN_STATES = tuple(s.value for s in State if s is not State.ENDED)


def store_problem(url: str, exc: BaseException) -> str:
    """One line saying why the store at ``url`` cannot be used: the error's
    class and first line (at most 200 characters), the URL's password
    never in it."""
    text = (str(exc).strip().splitlines() or [""])[0]
    try:
        parsed = sa.engine.make_url(url)
        passwords = [parsed.password, *(v for k, v in parsed.query.items() if k.lower().endswith("password"))]
    except Exception:  # noqa: BLE001 - an unparsable URL has nothing to hide here
        passwords = []
    for password in passwords:
        for value in ([password] if isinstance(password, str) else password or ()):
            if value:
                text = text.replace(str(value), "***")
    return f"{type(exc).__name__}: {text}"[:200]


def probe_store(url: str) -> str | None:
    """Can the service use the store at ``url``? None if so, else why (one line).

    Changes nothing: the database driver is imported; a SQLite file's
    directory must exist and be writable (or be creatable) — the file is
    not created; another database is connected to and left at once.
    """
    try:
        engine_url = sa.engine.make_url(url)
        engine = sa.create_engine(engine_url)        # imports the driver
    except Exception as exc:  # noqa: BLE001 - any reason is reported, in one line
        return store_problem(url, exc)
    try:
        if engine_url.get_backend_name() == "sqlite":
            if engine_url.database in (None, "", ":memory:"):
                return None
            path = Path(engine_url.database).absolute()
            if path.exists() and not path.is_file():
                return f"{path}: not a file"
            parent = path.parent
            while not parent.exists():
                parent = parent.parent
            if path.exists():
                # The file must be a database, and its directory writable
                # (WAL keeps -wal and -shm files beside it).
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
            # Try it (root passes every access() check): a directory made
            # and removed at once where the store's directory would go.
            try:
                os.rmdir(tempfile.mkdtemp(prefix=".c2d-check-", dir=parent))
            except OSError as exc:
                return f"{path.parent}: cannot be created or written ({exc.strerror or exc})"
            return None
        with engine.connect():
            return None
    except Exception as exc:  # noqa: BLE001
        return store_problem(url, exc)
    finally:
        engine.dispose()


class Journal:
    """The call journal.

    ``url``: a SQLAlchemy URL (``sqlite:////var/lib/platforma-c2d/calls.sqlite3``,
    ``postgresql+psycopg://c2d:PASSWORD@db.example/c2d``); the parent
    directory of a SQLite file is created, the file readable by its owner
    alone (:func:`~platforma_c2d.store.files.prepare_sqlite_file`), and the
    schema is migrated to this release's revision
    (:func:`platforma_c2d.store.schema.migrate`). Raises
    ``sqlalchemy.exc.SQLAlchemyError`` when the database cannot be opened,
    Alembic's ``CommandError`` when it is at an unknown revision.
    """

    def __init__(self, url: str, node: str | None = None):
        self.url = url
        #: ``[cluster] node``: stored with each new call; reconciliation reads only its calls
        self.node = node or None
        #: call id -> the state (and fixed fields) this journal last committed for it (open
        #: calls only; store/batch.py: spares the read of the state, checked by the update itself)
        self._known: dict[str, Committed] = {}
        engine_url = sa.engine.make_url(url)
        if engine_url.get_backend_name() == "sqlite" and engine_url.database not in (None, "", ":memory:"):
            prepare_sqlite_file(engine_url.database)      # private files (store/files.py)
        kwargs = {}
        if engine_url.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = sa.create_engine(url, **kwargs)
        if engine_url.get_backend_name() == "sqlite":
            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.close()
        schema.migrate(self.engine)     # tables made or brought to this release's revision
        if engine_url.get_backend_name() == "sqlite":
            # The migration's pages into the file now: a later read (GET /healthz)
            # then finds an empty WAL and leaves the -shm file as it is.
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # --- writes ------------------------------------------------------------
    @staticmethod
    def snapshot(call: Call, detail: str = "", *, idempotency_key: str | None = None,
                 request_hash: str | None = None, status_callback: str | None = None) -> dict:
        """The record of ``call`` as it is now: ``{"row": {...}, "event": {...}, ...}``.

        Taken at once (the call object goes on changing); written later by
        :meth:`write`. ``detail`` is cut to 500 characters; ``status_callback``: the
        call's own webhook URL, stored with its first record.
        """
        row = {
            **call.stored_fields(),
            # Before the end, the reason column holds the outcome already
            # known (the agent hears the busy tone), for a restart; the API
            # shows a reason only once the call has ended.
            "reason": (call.reason or call.pending_reason).value if (call.reason or call.pending_reason) else None,
            "ended_by": (call.ended_by or call.pending_by).value if (call.ended_by or call.pending_by) else None,
            "agent_channel": call.agent_leg.channel_id if call.agent_leg else None,
            "callee_channel": call.callee_leg.channel_id if call.callee_leg else None,
            "bridge_id": call.bridge_id, "token_name": call.token_name,
        }
        event_row = {"call_id": call.id, "at": iso(utcnow()), "state": row["state"],
                     "reason": row["reason"], "detail": detail[:500]}
        return {"row": row, "event": event_row, "idempotency_key": idempotency_key,
                "request_hash": request_hash, "status_callback": status_callback}

    def write(self, records: list[dict], conn: sa.Connection | None = None) -> None:
        """Write snapshots (:meth:`snapshot`) in order, in one transaction (one commit):
        each call's row once, as its last record has it; every history row and
        every event (SPEC §10) in order (``store/batch.py``).

        ``conn``: a connection of the caller's thread, kept between batches
        (the writer thread's), outside any transaction; by default one of the
        pool. Raises ``sqlalchemy.exc.SQLAlchemyError``; then nothing of the
        batch is written.
        """
        if conn is None:
            with self.engine.begin() as pooled:
                states = write_batch(pooled, records, self._known, self.node, _BATCH)
        else:
            with conn.begin():
                states = write_batch(conn, records, self._known, self.node, _BATCH)
        self._remember(states)

    def _remember(self, committed: dict[str, Committed]) -> None:
        """Note what was just committed; an ended call is forgotten (it is seldom written again)."""
        if len(self._known) > _KNOWN_MAX:
            self._known.clear()             # a forgotten call costs a read of its state, nothing more
        for call_id, now in committed.items():
            if now[0] == State.ENDED.value:
                self._known.pop(call_id, None)
            else:
                self._known[call_id] = now

    def record(self, call: Call, detail: str = "", *, idempotency_key: str | None = None,
               request_hash: str | None = None) -> None:
        """Write the call's current state and one event row now, in one transaction.

        ``detail``: a short free text for the event (why it changed). Blocks
        for the commit; the service's event loop uses :class:`JournalWriter`
        instead. Raises ``sqlalchemy.exc.SQLAlchemyError``.
        """
        self.write([self.snapshot(call, detail, idempotency_key=idempotency_key,
                                  request_hash=request_hash)])

    def end_if_open(self, call: Call, detail: str = "") -> bool:
        """Write ``call`` (ended) only if its row is not ended yet; returns whether it was.

        Another process (the FastAGI hangup handler, the service) may end the
        same call at the same moment: the first end stands. Raises
        ``sqlalchemy.exc.SQLAlchemyError``.
        """
        rec = self.snapshot(call, detail)
        with self.engine.begin() as conn:
            if not _UPDATE_OPEN_CALL.execute(conn, row_params(rec["row"])).rowcount:
                return False
            _INSERT_EVENT.execute(conn, rec["event"])
            # the row is the snapshot now: the event's resource is built from it, not read back
            outbox.add_event(conn, call_resource(rec["row"]), rec["event"]["at"], rec["row"]["token_name"])
        self._known.pop(call.id, None)
        return True

    def mark_outcome(self, call_id: str, reason: str | None, detail: str, by: str | None = None) -> bool:
        """Note the reason an open call will end with, and who ends it (kept in
        ``reason`` and ``ended_by`` until it ends); ``None`` takes them back.

        Used for a FastAGI call cancelled through the API: its hangup handler
        ends it with this reason. Returns False when the call is ended or
        unknown. Raises ``sqlalchemy.exc.SQLAlchemyError``.
        """
        with self.engine.begin() as conn:
            if not conn.execute(calls.update().where(calls.c.id == call_id, calls.c.state != "ended")
                                .values(reason=reason, ended_by=by)).rowcount:
                return False
            state = conn.execute(sa.select(calls.c.state).where(calls.c.id == call_id)).scalar_one()
            _INSERT_EVENT.execute(conn, {"call_id": call_id, "at": iso(utcnow()), "state": state,
                                         "reason": reason, "detail": detail[:500]})
        return True

    # --- reads (any thread) ------------------------------------------------
    def get(self, call_id: str) -> dict | None:
        """The call resource (SPEC §2) of ``call_id``, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(calls).where(calls.c.id == call_id)).mappings().first()
        return self._resource(row) if row else None

    def _newest_row(self, *where) -> dict | None:
        """The whole stored row of the newest call matching every ``where`` clause, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(calls).where(*where).order_by(calls.c.created_at.desc())
                               .limit(1)).mappings().first()
        return dict(row) if row else None

    def get_row(self, call_id: str) -> dict | None:
        """The whole stored row (channels, bridge, token) of ``call_id``, or None."""
        return self._newest_row(calls.c.id == call_id)

    def find_by_channel(self, channel_id: str) -> dict | None:
        """The whole stored row of the newest call whose agent leg is ``channel_id``, or None.

        For a browser's channel found in the Stasis app after a restart:
        was it journalled before the crash?
        """
        return self._newest_row(calls.c.agent_channel == channel_id)

    def list(self, *, states: tuple[str, ...] = (), origins: tuple[str, ...] = (), agent: str | None = None,
             call_ref: str | None = None, created_after: datetime | None = None,
             created_before: datetime | None = None, updated_after: datetime | None = None,
             agents: tuple[str, ...] = (), limit: int = 50,
             before: tuple[str, str] | None = None, count_up_to: int = 10_001) -> tuple[list[dict], int]:
        """Call resources newest first (``created_at``, then ``id``, descending); returns (page, total).

        Filters (all optional, all must hold): ``states``/``origins`` (any
        of), ``agent`` and ``call_ref`` (equal), ``created_after`` (at or
        after), ``created_before`` (before), ``updated_after`` (at or after;
        timezone-aware datetimes), ``agents`` (the caller's token's agents,
        any of). ``before``: the (created_at, id) of the last call of the
        previous page; the page holds the calls after it in the order, so a
        call placed meanwhile never shifts a later page. ``total``: calls
        matching the filters over all pages, counted up to ``count_up_to``
        (a journal of millions is never counted whole on a read).
        """
        where = []
        for column, values in ((calls.c.state, states), (calls.c.origin, origins), (calls.c.agent, agents)):
            if values:
                where.append(column.in_(values))
        if agent is not None:
            where.append(calls.c.agent == agent)
        if call_ref is not None:
            where.append(calls.c.call_ref == call_ref)
        if created_after is not None:
            where.append(calls.c.created_at >= iso(created_after))
        if created_before is not None:
            where.append(calls.c.created_at < iso(created_before))
        if updated_after is not None:
            where.append(calls.c.updated_at >= iso(updated_after))
        page = sa.select(calls).where(*where)
        if before is not None:
            page = page.where(sa.tuple_(calls.c.created_at, calls.c.id) < sa.tuple_(*before))
        page = page.order_by(calls.c.created_at.desc(), calls.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(page).mappings().all()
            matching = sa.select(calls.c.id).where(*where).limit(count_up_to).subquery()
            total = conn.execute(sa.select(sa.func.count()).select_from(matching)).scalar_one()
        return [self._resource(r) for r in rows], total

    def unfinished(self) -> list[dict]:
        """Whole rows of every call not yet ``ended`` (for reconciliation); in a
        cluster, only this journal's node's calls."""
        # IN (...) rather than != "ended": the state index then finds the
        # few open calls among millions of ended ones.
        query = sa.select(calls).where(calls.c.state.in_(_OPEN_STATES))
        if self.node:
            query = query.where(calls.c.node == self.node)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [dict(r) for r in rows]

    def events(self, call_id: str) -> list[dict]:
        """The event rows of one call, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(call_events).where(call_events.c.call_id == call_id)
                                .order_by(call_events.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def find_idempotent(self, token_name: str, key: str, since: datetime) -> dict | None:
        """The stored row of a call placed with this Idempotency-Key since ``since``."""
        return self._newest_row(calls.c.token_name == token_name, calls.c.idempotency_key == key,
                                calls.c.created_at >= iso(since))

    def writable(self) -> bool:
        """Whether the store can take writes now, judged without writing (``GET /healthz``).

        A probe may come every second from a load balancer, so it writes
        nothing: the database must answer a read of the calls table, and a
        SQLite file and its directory (WAL's ``-wal`` and ``-shm`` files go
        there) must be writable by this process.
        """
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.select(calls.c.id).limit(1)).all()
        except sa.exc.SQLAlchemyError:
            return False
        url = sa.engine.make_url(self.url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            path = Path(url.database)
            return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
        return True

    @staticmethod
    def _resource(row) -> dict:
        return call_resource(row)



def __getattr__(name: str):
    """``JournalWriter``, the writing thread, lives in ``store/writer.py`` (it imports
    this module); still importable from here."""
    if name == "JournalWriter":
        from platforma_c2d.store.writer import JournalWriter
        return JournalWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
