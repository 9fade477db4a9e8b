"""What the journal sends its database per record (the journal's cost per call,
docs/performance.md), and that the cheaper writes keep every promise: a
change of state is one event (SPEC §10) whoever else wrote the row, the
row ends with the latest state, history rows and events in order.

Counted with SQLAlchemy's ``before_cursor_execute`` hook on a real SQLite
file and a real PostgreSQL server; a statement sent for many rows
(``executemany``) counts once.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from platforma_c2d.calls.model import Call, Origin, Reason, State, new_call_id
from platforma_c2d.store.journal import Journal
from platforma_c2d.store.outbox import Outbox, event_dict
from platforma_c2d.store.writer import JournalWriter
from tests.unit.test_journal_writer import hold_first_write


@pytest.fixture()
def journal(store_url):
    """The journal on SQLite, then on PostgreSQL."""
    j = Journal(store_url)
    yield j
    j.close()


class Sent:
    """The statements an engine sends from now on: ``(kind, table)`` pairs,
    e.g. ``("UPDATE", "calls")``; an advisory lock is ``("SELECT", "lock")``."""

    def __init__(self, engine: sa.Engine):
        self.statements: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn, _cursor, statement, _params, _context, _executemany):
        words = statement.split()
        kind = words[0].upper()
        if "pg_advisory_xact_lock" in statement:
            table = "lock"
        elif kind == "SELECT":
            table = words[words.index("FROM") + 1] if "FROM" in words else "?"
        elif kind == "INSERT":
            table = words[2]
        elif kind == "UPDATE":
            table = words[1]
        else:
            table = "?"
        with self._lock:
            self.statements.append((kind, table.strip('"')))

    def take(self) -> list[tuple[str, str]]:
        """What was sent since the last take."""
        with self._lock:
            out, self.statements = self.statements, []
        return out


def a_call(agent: str = "1001") -> Call:
    return Call(id=new_call_id(), origin=Origin.REST, agent=agent, callee="0215550100",
                outbound_id="", clid="0215550199", call_ref="CRM-1", token_name="crm")


def rest_call_steps(call: Call):
    """The four records of a REST call: (change, detail); each change applies itself."""
    return [(lambda: None, "placed"), (lambda: call.advance(State.DIALING_CALLEE), "agent answered"),
            (lambda: call.advance(State.CONNECTED), "bridged"), (lambda: call.end(Reason.COMPLETED), "ended")]


def lock(journal) -> list[tuple[str, str]]:
    return [("SELECT", "lock")] if journal.engine.dialect.name == "postgresql" else []


def test_a_call_this_journal_writes_costs_no_read_and_three_statements_a_record(journal):
    writer = JournalWriter(journal)
    sent = Sent(journal.engine)
    call = a_call()
    per_record = []
    for change, detail in rest_call_steps(call):
        change()
        writer.submit(call, detail).result(timeout=10)
        per_record.append(sent.take())
    writer.close()
    # No SELECT of the call's state, none of the row to build the event: the
    # first record inserts the row, each later one updates it.
    assert per_record[0] == [("INSERT", "calls"), ("INSERT", "call_events"), *lock(journal), ("INSERT", "events")]
    for statements in per_record[1:]:
        assert statements == [("UPDATE", "calls"), ("INSERT", "call_events"), *lock(journal), ("INSERT", "events")]
    types = [r["type"] for r in Outbox(journal.engine).read()]
    assert types == ["call.dialing_agent", "call.dialing_callee", "call.connected", "call.ended"]


def test_records_of_one_call_queued_together_are_one_write_of_its_row(journal):
    writer = JournalWriter(journal)
    first, second = a_call("1001"), a_call("1002")
    writer.submit(second, "placed").result(timeout=10)
    sent = Sent(journal.engine)
    gate = hold_first_write(journal)
    held = writer.submit(a_call("1003"), "placed")       # the writer is busy with it alone...
    assert gate.entered.wait(10)
    futures = []
    for (change, detail), other in zip(rest_call_steps(first), ["rings", "rings", "rings", "rings"]):
        change()
        futures.append(writer.submit(first, detail))
        futures.append(writer.submit(second, other))   # interleaved with another call's
    second.end(Reason.CANCELLED)
    futures.append(writer.submit(second, "cancelled"))
    gate.set()
    held.result(timeout=10)
    for done in futures:
        done.result(timeout=10)
    writer.close()
    row_writes = [s for s in sent.take() if s[1] == "calls"]
    # ...so the nine records after it went as one batch: one write per call's row
    # (the held record's own insert, then the two calls of the batch).
    assert sorted(row_writes) == [("INSERT", "calls"), ("INSERT", "calls"), ("UPDATE", "calls")]
    assert journal.get_row(first.id)["state"] == "ended" and journal.get_row(second.id)["state"] == "ended"
    assert [e["detail"] for e in journal.events(first.id)] == ["placed", "agent answered", "bridged", "ended"]
    assert [e["detail"] for e in journal.events(second.id)] == ["placed", "rings", "rings", "rings", "rings",
                                                                 "cancelled"]
    events = [event_dict(r) for r in Outbox(journal.engine).read()]
    assert [(e["call"]["id"], e["type"]) for e in events] == [
        (second.id, "call.dialing_agent"), (events[1]["call"]["id"], "call.dialing_agent"),
        (first.id, "call.dialing_agent"), (first.id, "call.dialing_callee"), (first.id, "call.connected"),
        (first.id, "call.ended"), (second.id, "call.ended")]
    # Each event carries the call as it was at its own change, and the last as GET shows it.
    assert [e["call"]["state"] for e in events[2:6]] == ["dialing_agent", "dialing_callee", "connected", "ended"]
    assert events[5]["call"] == journal.get(first.id) and events[6]["call"] == journal.get(second.id)


def test_a_row_another_writer_ended_meanwhile_gets_no_second_ended_event(journal):
    """The FastAGI process (or another instance) ends the call between two of this
    journal's writes: the state this journal remembers is stale, so it reads the row."""
    writer = JournalWriter(journal)
    call = a_call()
    writer.submit(call, "placed").result(timeout=10)
    other = Journal(journal.url)
    try:
        elsewhere = Call.from_row(other.get_row(call.id))
        elsewhere.end(Reason.CANCELLED)
        assert other.end_if_open(elsewhere, "hangup handler")
    finally:
        other.close()
    call.end(Reason.COMPLETED)
    writer.submit(call, "the service ends it too").result(timeout=10)
    writer.close()
    types = [r["type"] for r in Outbox(journal.engine).read()]
    assert types == ["call.dialing_agent", "call.ended"]


def test_a_row_another_writer_moved_on_still_makes_the_event_of_a_change(journal):
    writer = JournalWriter(journal)
    call = a_call()
    writer.submit(call, "placed").result(timeout=10)
    other = Journal(journal.url)                       # e.g. the process before a restart
    try:
        moved = Call.from_row(other.get_row(call.id))
        moved.advance(State.DIALING_CALLEE)
        other.record(moved, "agent answered")
    finally:
        other.close()
    call.advance(State.DIALING_CALLEE)
    writer.submit(call, "agent answered (again)").result(timeout=10)   # no change: no event
    call.advance(State.CONNECTED)
    writer.submit(call, "bridged").result(timeout=10)
    writer.close()
    types = [r["type"] for r in Outbox(journal.engine).read()]
    assert types == ["call.dialing_agent", "call.dialing_callee", "call.connected"]


def test_a_journal_after_a_restart_writes_the_calls_it_finds(journal):
    call = a_call()
    journal.record(call, "placed")
    call.advance(State.DIALING_CALLEE)
    call.advance(State.CONNECTED)
    journal.record(call, "bridged")
    restarted = Journal(journal.url)
    try:
        sent = Sent(restarted.engine)
        taken_back = Call.from_row(restarted.get_row(call.id))
        sent.take()
        restarted.record(taken_back, "taken back after a restart")     # no change of state, no event
        # It has not written the row: it finds the row there, reads its state, updates it.
        assert [s for s in sent.take() if s[1] == "calls"] == [
            ("INSERT", "calls"), ("SELECT", "calls"), ("UPDATE", "calls")]
        taken_back.end(Reason.COMPLETED)
        restarted.record(taken_back, "ended")
    finally:
        restarted.close()
    types = [r["type"] for r in Outbox(journal.engine).read()]
    assert types == ["call.dialing_agent", "call.connected", "call.ended"]
    assert journal.get(call.id)["state"] == "ended"


def test_the_writers_statements_reach_the_driver_as_sql_compiled_once(journal):
    """Each statement a record sends is SQL text compiled once per database and run
    with the driver's own execute: no statement object is compiled, or looked up in
    SQLAlchemy's cache by a walk of it, per record (docs/performance.md, the
    journal's trial); the event hooks, the transaction and the errors are
    SQLAlchemy's as before."""
    writer = JournalWriter(journal)
    seen: list[tuple[str, bool]] = []

    def compiled(_conn, _cursor, statement, _params, context, _many):
        seen.append((statement.split()[0].upper(), context.compiled is not None))

    sa.event.listen(journal.engine, "before_cursor_execute", compiled)
    call = a_call()
    for change, detail in rest_call_steps(call):
        change()
        writer.submit(call, detail).result(timeout=10)
    writer.close()
    sa.event.remove(journal.engine, "before_cursor_execute", compiled)
    assert len(seen) == 12 + len(lock(journal)) * 4
    assert [kind for kind, by_sqlalchemy in seen if by_sqlalchemy] == []
    assert journal.get(call.id)["state"] == "ended"
    assert [r["type"] for r in Outbox(journal.engine).read()][-1] == "call.ended"


def test_a_refused_record_raises_sqlalchemys_error_and_the_batch_keeps_the_others(journal):
    """The driver's error reaches the writer as SQLAlchemy's (``IntegrityError``):
    the record's future fails with it, the rest of its batch is written."""
    writer = JournalWriter(journal)
    good, bad = a_call("1001"), a_call("1002")
    writer.submit(good, "placed").result(timeout=10)
    gate = hold_first_write(journal)
    held = writer.submit(a_call("1003"), "placed")
    assert gate.entered.wait(10)
    bad.clid = None                                 # NOT NULL: the database refuses the row
    refused = writer.submit(bad, "placed")
    good.advance(State.DIALING_CALLEE)
    kept = writer.submit(good, "agent answered")
    gate.set()
    held.result(timeout=10)
    assert kept.result(timeout=10) is None
    with pytest.raises(sa.exc.IntegrityError):
        refused.result(timeout=10)
    writer.close()
    assert journal.get(good.id)["state"] == "dialing_callee" and journal.get(bad.id) is None


def test_later_records_update_only_the_fields_that_change_unless_a_fixed_one_did(journal):
    """A call's later records leave the fields its first record settled (agent,
    callee, CLID, call_ref, created_at...) out of the update: on SQLite every index
    of a column named in SET is rewritten, changed or not (the WAL pages of each
    commit). A record whose such field did change still writes it."""
    writer = JournalWriter(journal)
    updates: list[str] = []

    def seen(_conn, _cursor, statement, _params, _context, _many):
        if statement.startswith("UPDATE calls"):
            updates.append(statement.split(" WHERE ")[0])

    sa.event.listen(journal.engine, "before_cursor_execute", seen)
    call = a_call()
    writer.submit(call, "placed").result(timeout=10)
    call.advance(State.DIALING_CALLEE)
    writer.submit(call, "agent answered").result(timeout=10)
    call.call_ref = "CRM-2"
    call.advance(State.CONNECTED)
    writer.submit(call, "bridged").result(timeout=10)
    call.end(Reason.COMPLETED)
    writer.submit(call, "ended").result(timeout=10)
    writer.close()
    sa.event.remove(journal.engine, "before_cursor_execute", seen)
    assert len(updates) == 3
    for fixed in ("agent", "callee", "clid", "call_ref", "created_at", "token_name", "origin"):
        assert f" {fixed}=" not in updates[0] and f" {fixed}=" not in updates[2]
        assert f" {fixed}=" in updates[1]                # call_ref changed: the whole row
    assert "state=" in updates[0] and "updated_at=" in updates[0]
    row = journal.get_row(call.id)
    assert (row["state"], row["call_ref"], row["agent"], row["clid"]) == ("ended", "CRM-2", "1001", "0215550199")
