"""One batch of journal records in one transaction, with as few statements as it takes.

The journal's writer (decision 0004) commits whatever has queued up at once.
A record is a snapshot of a call (``Journal.snapshot``): the row as it is
now and one history row; a record whose state differs from the row's
state before it also stores its event (SPEC §10). What each batch sends:

* **one write of each call's row**, however many of its records are in the
  batch: the row ends as the last record has it, as it would after writing
  them one by one;
* **the state the row had**, needed to tell a change of state, is not read
  when this journal wrote the row last: the update says which state it
  expects (``WHERE id = … AND state = …``), so a row another writer changed
  since (the FastAGI process, another instance, the process before a
  restart) matches nothing, and only then is its state read and the row
  written. That update sets only the fields a call's later records
  change (:data:`FIXED_FIELDS` are left as they are, when they are what
  this journal wrote): on SQLite every index of a column named in the
  ``SET`` is rewritten, changed or not, and so written to the WAL and
  checkpointed (docs/performance.md). A call the journal has not seen is inserted if new (``INSERT …
  ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL), else read, then
  updated;
* **every history row, and every event, in submission order**: each in one
  statement of many rows (``executemany``); an event's resource is built
  from its record (the row as the update leaves it), not read back.

Each statement is compiled once per database and run through the driver's
own execute (``store/driver_sql.py``): no statement object is walked per
record.
"""

from __future__ import annotations

import operator

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from platforma_c2d.calls.model import call_resource
from platforma_c2d.store import outbox
from platforma_c2d.store.driver_sql import DriverStatement

#: what a call's first record stores beside its row
_FIRST_FIELDS = ("idempotency_key", "request_hash", "node")
#: a history row's columns (``call_events``; its id is the database's)
HISTORY_FIELDS = ("call_id", "at", "state", "reason", "detail")
#: a call's fields its first record settles, which its later records repeat
FIXED_FIELDS = ("origin", "agent", "callee", "outbound_id", "clid", "call_ref", "created_at", "token_name")
_fixed_of = operator.itemgetter(*FIXED_FIELDS)

#: what this journal last committed for a call: its state, and its :data:`FIXED_FIELDS` values
Committed = tuple[str, tuple]


def row_params(row: dict) -> dict:
    """A call's row (``Journal.snapshot``) as the bind parameters of the journal's
    updates: each field ``f`` as ``p_f`` (a column's own name is SQLAlchemy's
    in an update's SET clause)."""
    return {"p_" + k: v for k, v in row.items()}


class BatchStatements:
    """The statements of :func:`write_batch`, built once for the journal's tables.

    ``calls``/``call_events``: the journal's tables; ``update``: the update
    of every stored field of a call by id (bind parameters ``p_<field>``,
    :func:`row_params`); ``row_fields``: the fields of a record's row.
    """

    def __init__(self, calls: sa.Table, call_events: sa.Table, update: sa.Update,
                 row_fields: tuple[str, ...]):
        self.calls = calls
        self.update = DriverStatement(update)
        #: the fields other than FIXED_FIELDS, only if the row still has the state the journal last wrote
        self.update_if = DriverStatement(
            calls.update().where(calls.c.id == sa.bindparam("p_id"), calls.c.state == sa.bindparam("p_was"))
            .values({k: sa.bindparam("p_" + k) for k in row_fields if k != "id" and k not in FIXED_FIELDS}))
        #: the whole row, only if the row still has that state (a fixed field changed since)
        self.update_all_if = DriverStatement(update.where(calls.c.state == sa.bindparam("p_was")))
        self.state_of = DriverStatement(sa.select(calls.c.state).where(calls.c.id == sa.bindparam("p_id")))
        keys = (*row_fields, *_FIRST_FIELDS)
        self.insert = DriverStatement(calls.insert(), keys)
        self.insert_history = DriverStatement(call_events.insert(), HISTORY_FIELDS)
        # The count of rows an INSERT made is only kept when asked for
        # (SQLAlchemy's ``preserve_rowcount``): otherwise it may read -1.
        self._insert_new = {
            name: DriverStatement(dialect.insert(calls).on_conflict_do_nothing(index_elements=[calls.c.id]),
                                  keys, preserve_rowcount=True)
            for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))}

    def insert_new(self, dialect: str) -> DriverStatement | None:
        """The insert of a call that does nothing when its id is stored already; None
        where the database has no such insert (then the row is read first)."""
        return self._insert_new.get(dialect)


def write_batch(conn: sa.Connection, records: list[dict], known: dict[str, Committed], node: str | None,
                stmts: BatchStatements) -> dict[str, Committed]:
    """Write ``records`` (snapshots, in submission order) on ``conn``, inside its transaction.

    ``known``: call id → what this journal last committed for it
    (:data:`Committed`; read only; a wrong or stale state costs a read,
    never a wrong write); ``node``: ``[cluster] node`` stored with a new
    call. Returns call id → what each call's row now has, for ``known``
    once the transaction is committed. Raises ``sqlalchemy.exc.SQLAlchemyError``.
    """
    by_call: dict[str, list[dict]] = {}
    for rec in records:
        by_call.setdefault(rec["row"]["id"], []).append(rec)
    state: dict[str, str | None] = {}
    for call_id, recs in by_call.items():
        state[call_id] = _write_row(conn, recs, known.get(call_id), node, stmts)
    history, changes = [], []
    for rec in records:
        row = rec["row"]
        history.append(rec["event"])
        if state[row["id"]] != row["state"]:
            changes.append((call_resource(row), rec["event"]["at"], row["token_name"]))
            state[row["id"]] = row["state"]
    stmts.insert_history.execute_many(conn, history)
    if changes:
        outbox.add_events(conn, changes)
    return {call_id: (recs[-1]["row"]["state"], _fixed_of(recs[-1]["row"])) for call_id, recs in by_call.items()}


def _write_row(conn: sa.Connection, recs: list[dict], committed: Committed | None, node: str | None,
               stmts: BatchStatements) -> str | None:
    """Store the row of one call as its last record has it; returns the state it had before (None: new)."""
    row = recs[-1]["row"]
    was = committed[0] if committed is not None else None
    if was is not None:
        update = stmts.update_if if committed[1] == _fixed_of(row) else stmts.update_all_if
        if update.execute(conn, {**row_params(row), "p_was": was}).rowcount == 1:
            return was
    first = {"idempotency_key": next((r["idempotency_key"] for r in recs if r["idempotency_key"]), None),
             "request_hash": next((r["request_hash"] for r in recs if r["request_hash"]), None),
             "node": node}
    insert_new = stmts.insert_new(conn.dialect.name) if was is None else None
    if insert_new is not None and insert_new.execute(conn, {**row, **first}).rowcount == 1:
        before = None
    else:
        before = stmts.state_of.execute(conn, {"p_id": row["id"]}).scalar()
        if before is not None:
            stmts.update.execute(conn, row_params(row))
            return before
        stmts.insert.execute(conn, {**row, **first})
    callback = next((r.get("status_callback") for r in recs if r.get("status_callback")), None)
    if callback:
        outbox.add_callback(conn, row["id"], callback)
    return before
