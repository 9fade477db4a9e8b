"""Call events stored with the state change (SPEC §10): one per change of state, from
every writer of the journal, in the same transaction, ids increasing."""

from __future__ import annotations

import json
import threading

import pytest

from platforma_c2d.calls.model import Call, Origin, Reason, State, new_call_id
from platforma_c2d.store.journal import Journal
from platforma_c2d.store.writer import JournalWriter
from platforma_c2d.store import outbox
from platforma_c2d.store.outbox import Outbox, event_dict


@pytest.fixture()
def journal(store_url):
    """The journal on SQLite, then on PostgreSQL."""
    j = Journal(store_url)
    yield j
    j.close()


def a_call(agent: str = "1001", origin: Origin = Origin.REST) -> Call:
    return Call(id=new_call_id(), origin=origin, agent=agent, callee="0215550100",
                outbound_id="", clid="0215550199", call_ref="CRM-1", token_name="crm")


def test_each_change_of_state_is_one_event_with_the_call_resource_as_the_api_returns_it(journal):
    writer = JournalWriter(journal)
    call = a_call()
    writer.submit(call, "placed")
    call.advance(State.DIALING_CALLEE)
    writer.submit(call, "agent answered")
    writer.submit(call, "the callee's leg rings")        # a detail, no change of state
    call.advance(State.CONNECTED)
    writer.submit(call, "bridged")
    call.end(Reason.COMPLETED)
    writer.submit(call, "callee hung up").result(timeout=10)
    writer.close()
    rows = Outbox(journal.engine).read()
    events = [event_dict(r) for r in rows]
    assert [e["type"] for e in events] == ["call.dialing_agent", "call.dialing_callee",
                                           "call.connected", "call.ended"]
    assert [e["id"] for e in events] == sorted({e["id"] for e in events})
    assert events[-1]["call"] == journal.get(call.id)   # the resource of GET /calls/{id}
    assert events[-1]["call"]["reason"] == "completed"
    assert events[0]["call"]["reason"] is None and events[0]["call"]["state"] == "dialing_agent"
    assert all(r["agent"] == "1001" and r["token_name"] == "crm" for r in rows)
    # The journal's history and the events agree on the times of the changes.
    history = [e for e in journal.events(call.id) if e["detail"] != "the callee's leg rings"]
    assert [e["at"] for e in events] == [h["at"] for h in history]


def test_a_refused_call_is_one_ended_event(journal):
    call = a_call(origin=Origin.WEBRTC)
    call.end(Reason.REJECTED)
    journal.record(call, "refused")
    (event,) = [event_dict(r) for r in Outbox(journal.engine).read()]
    assert event["type"] == "call.ended" and event["call"]["reason"] == "rejected"


def test_an_agi_call_ended_twice_has_one_ended_event(journal):
    call = a_call(origin=Origin.AGI)
    call.advance(State.DIALING_CALLEE)
    journal.record(call, "accepted")
    assert journal.mark_outcome(call.id, "cancelled", "cancel requested")   # no change of state
    call.end(Reason.COMPLETED)
    assert journal.end_if_open(call, "hangup handler")
    assert not journal.end_if_open(call, "the service, a moment later")
    types = [r["type"] for r in Outbox(journal.engine).read()]
    assert types == ["call.dialing_callee", "call.ended"]


def test_no_state_without_its_event(journal, monkeypatch):
    call = a_call()
    journal.record(call, "placed")
    call.advance(State.DIALING_CALLEE)

    def refused(*_args, **_kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(outbox, "add_events", refused)
    with pytest.raises(RuntimeError):
        journal.record(call, "agent answered")
    monkeypatch.undo()
    assert journal.get(call.id)["state"] == "dialing_agent"       # the change went with its event
    assert [e["detail"] for e in journal.events(call.id)] == ["placed"]
    assert [r["type"] for r in Outbox(journal.engine).read()] == ["call.dialing_agent"]


def test_reads_resume_after_an_id_and_filter_by_call_and_agent(journal):
    calls = [a_call("1001"), a_call("1002")]
    for call in calls:
        journal.record(call, "placed")
        call.end(Reason.CANCELLED)
        journal.record(call, "cancelled")
    outbox = Outbox(journal.engine)
    everything = outbox.read()
    assert len(everything) == 4 and outbox.last_id() == everything[-1]["id"]
    assert outbox.read(after=everything[1]["id"]) == everything[2:]
    assert [r["call_id"] for r in outbox.read(call_id=calls[0].id)] == [calls[0].id] * 2
    assert {r["agent"] for r in outbox.read(agents=("1002",))} == {"1002"}
    assert outbox.read(limit=1) == everything[:1]
    assert json.loads(everything[0]["call"])["id"] == calls[0].id


def test_on_postgresql_an_event_id_is_never_committed_after_a_higher_one(postgres_server):
    """Two writers (the service and the FastAGI process): a reader that has
    read event N must never find an event < N committed later."""
    journal = Journal(postgres_server.new_database())
    first, second = a_call("1001"), a_call("1002")
    conn = journal.engine.connect()
    slow = conn.begin()
    outbox.add_event(conn, {"id": first.id, "state": "dialing_agent", "agent": "1001"}, "2026-01-01T00:00:00Z")
    other = threading.Thread(target=lambda: journal.write([journal.snapshot(second, "new")]))
    other.start()
    other.join(1.0)
    seen = [e["call_id"] for e in Outbox(journal.engine).read()]
    slow.commit()
    conn.close()
    other.join(10)
    ids = [(e["id"], e["call_id"]) for e in Outbox(journal.engine).read()]
    journal.close()
    assert seen == []                      # the second writer waited for the first one's commit
    assert [c for _, c in ids] == [first.id, second.id] and ids[0][0] < ids[1][0]


def test_due_leaves_out_full_endpoints_and_keeps_a_few_rows_per_endpoint(journal):
    """A receiver with a backlog of many calls never fills the page of due deliveries
    (SPEC §10: one slow receiver never delays the others)."""
    stuck_calls = [a_call("1001") for _ in range(6)]
    other = a_call("1002")
    for call in (*stuck_calls, other):
        journal.record(call, "placed")
    box = Outbox(journal.engine)
    box.fan_out(lambda ev, _cb: [("stuck", "http://127.0.0.1:9/a")] if ev["agent"] == "1001"
                else [("good", "http://127.0.0.1:9/b")])
    now = 2 ** 40
    assert [r["endpoint"] for r in box.due(now, set(), limit=3)] == ["stuck"] * 3   # the old page
    page = box.due(now, set(), limit=3, per_target=2)
    assert [(r["endpoint"], r["call_id"]) for r in page] == [
        ("stuck", stuck_calls[0].id), ("stuck", stuck_calls[1].id), ("good", other.id)]
    busy = {("stuck", stuck_calls[0].id)}
    page = box.due(now, busy, limit=3, per_target=2, full={"stuck"})
    assert [(r["endpoint"], r["call_id"]) for r in page] == [("good", other.id)]
    page = box.due(now, busy, limit=3, per_target=2)
    assert [r["call_id"] for r in page] == [stuck_calls[1].id, stuck_calls[2].id, other.id]


def test_due_leaves_out_the_urls_of_a_full_host(journal):
    """Calls' own URLs on one host share its place: once the host is full, none of them
    is read, whatever its path; another host's URL is."""
    calls = [a_call("1001") for _ in range(3)]
    for call in calls:
        journal.record(call, "placed")
    box = Outbox(journal.engine)
    urls = {calls[0].id: "http://crm_1.example:8080/hooks/a", calls[1].id: "http://crm_1.example:8080/hooks/b",
            calls[2].id: "http://crmx1.example:8080/hooks/c"}     # '_' is no wildcard
    box.fan_out(lambda ev, _cb: [("status_callback", urls[ev["call_id"]])])
    page = box.due(2 ** 40, set(), limit=10, per_target=4,
                   full_urls={("status_callback", "http://crm_1.example:8080/")})
    assert [r["call_id"] for r in page] == [calls[2].id]
