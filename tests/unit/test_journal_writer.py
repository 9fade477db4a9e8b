"""The journal's writing thread: group commit, order, failures, flush, close (SPEC §9)."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from platforma_c2d.calls.model import Call, Origin, Reason, State, new_call_id
from platforma_c2d.store.journal import Journal
from platforma_c2d.store.outbox import Outbox
from platforma_c2d.store.writer import JournalWriter


@pytest.fixture()
def journal(store_url):
    """The journal on SQLite, then on PostgreSQL."""
    j = Journal(store_url)
    yield j
    j.close()


def hold_first_write(journal) -> threading.Event:
    """Hold the writer thread in its first write until the returned event is set;
    the event's ``entered`` (an event too) is set once the thread is held there."""
    gate, real_write, held = threading.Event(), journal.write, []
    gate.entered = threading.Event()

    def held_write(records, *conn):
        if not held:
            held.append(True)
            gate.entered.set()
            gate.wait(10)
        real_write(records, *conn)

    journal.write = held_write
    return gate


def a_call(agent: str = "1001") -> Call:
    return Call(id=new_call_id(), origin=Origin.REST, agent=agent, callee="0215550100",
                outbound_id="", clid="0215550199", call_ref="CRM-1")


def test_every_change_is_on_disk_in_order_when_its_future_resolves(journal):
    writer = JournalWriter(journal)
    call = a_call()
    futures = [writer.submit(call, "placed", idempotency_key="k1", request_hash="h")]
    call.advance(State.DIALING_CALLEE)
    futures.append(writer.submit(call, "agent answered"))
    call.advance(State.CONNECTED)
    futures.append(writer.submit(call, "bridged"))
    call.end(Reason.COMPLETED)
    futures.append(writer.submit(call, "callee hung up"))
    for f in futures:
        assert f.result(timeout=10) is None
    # A second connection (another thread, another process) sees it all.
    other = Journal(journal.url)
    try:
        row = other.get_row(call.id)
        assert row["state"] == "ended" and row["reason"] == "completed"
        assert row["idempotency_key"] == "k1"
        # Each of the four writes reached the row: each change of state made its event.
        assert [e["type"] for e in Outbox(other.engine).read()] == [
            "call.dialing_agent", "call.dialing_callee", "call.connected", "call.ended"]
        assert [e["detail"] for e in other.events(call.id)] == [
            "placed", "agent answered", "bridged", "callee hung up"]
        assert [e["state"] for e in other.events(call.id)] == [
            "dialing_agent", "dialing_callee", "connected", "ended"]
    finally:
        other.close()
    writer.close()


def test_the_snapshot_is_taken_at_submit_not_at_write(journal):
    writer = JournalWriter(journal)
    call = a_call()
    first = writer.submit(call, "placed")
    call.end(Reason.CANCELLED)      # changed before the thread may have written
    first.result(timeout=10)
    events = journal.events(call.id)
    assert events[0]["state"] == "dialing_agent"
    writer.close()


def test_a_burst_is_committed_in_few_transactions(journal):
    writer = JournalWriter(journal)
    gate = hold_first_write(journal)   # the burst queues up behind it
    calls = [a_call() for _ in range(200)]
    futures = [writer.submit(c, "placed") for c in calls]
    gate.set()
    for f in futures:
        f.result(timeout=10)
    assert writer.records == 200
    assert writer.commits < 20, writer.commits     # group commit, not one each
    listed, total = journal.list(limit=500)
    assert total == 200 and {c["id"] for c in listed} == {c.id for c in calls}
    writer.close()


def test_a_record_the_database_refuses_loses_no_other(journal):
    writer = JournalWriter(journal)
    gate = hold_first_write(journal)
    good1, good2 = a_call(), a_call()
    bad = a_call(agent=None)            # NOT NULL: the database refuses it
    f_block = writer.submit(a_call(), "first")
    f1 = writer.submit(good1, "good")
    f_bad = writer.submit(bad, "bad")
    f2 = writer.submit(good2, "good")
    gate.set()
    f_block.result(timeout=10)
    f1.result(timeout=10)
    f2.result(timeout=10)
    with pytest.raises(sa.exc.IntegrityError):
        f_bad.result(timeout=10)
    assert journal.get(good1.id)["state"] == "dialing_agent"
    assert journal.get(good2.id)["state"] == "dialing_agent"
    assert journal.get(bad.id) is None
    writer.close()


def test_flush_waits_for_everything_submitted_before_it(journal):
    writer = JournalWriter(journal)
    gate = threading.Event()
    real_write = journal.write

    def held_write(records, *conn):
        gate.wait(10)
        real_write(records, *conn)

    journal.write = held_write
    call = a_call()
    writer.submit(call, "placed")
    barrier = writer.flush()
    assert not barrier.done()
    gate.set()
    barrier.result(timeout=10)
    assert journal.get(call.id) is not None
    writer.close()


def test_close_writes_what_is_queued_and_refuses_more(journal):
    writer = JournalWriter(journal)
    calls = [a_call() for _ in range(50)]
    for c in calls:
        writer.submit(c, "placed")
    writer.close()
    assert journal.list(limit=100)[1] == 50
    with pytest.raises(RuntimeError):
        writer.submit(a_call(), "late")
    assert writer.flush().result(timeout=1) is None
    writer.close()  # idempotent


def test_the_health_probe_writes_nothing_to_the_store(tmp_path):
    import hashlib

    from platforma_c2d.store.journal import Journal

    db = tmp_path / "calls.sqlite3"
    journal = Journal(f"sqlite:///{db}")

    def files():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(tmp_path.iterdir())}

    before = files()
    assert all(journal.writable() for _ in range(50))
    assert files() == before
    db.unlink()
    assert journal.writable() is False
    journal.close()
