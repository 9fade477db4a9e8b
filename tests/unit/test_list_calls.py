"""GET /click2dial/calls (SPEC §2): filters, a cursor that stays stable while
calls are placed, and every unknown or bad query parameter named at once.
Through the real application and journal (SQLite)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from platforma_c2d import rules
from platforma_c2d.calls.model import Call, Origin, Reason, State, iso, new_call_id
from platforma_c2d.http import create_app
from platforma_c2d.store.journal import Journal

from tests.unit.test_http_app import TOKEN, runtime  # noqa: F401 - the fixture

AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def client(runtime):
    return create_app(runtime.service, runtime.config, runtime.metrics).test_client()


def add(runtime, minute: float, *, agent="1001", ref="", origin=Origin.REST, state=State.DIALING_AGENT,
        reason=Reason.COMPLETED, updated: float | None = None) -> Call:
    """Journal a call created ``minute`` minutes after T0, in ``state``."""
    call = Call(id=new_call_id(), origin=origin, agent=agent, callee="0215550100", outbound_id="random",
                clid="0115550001", call_ref=ref)
    call.created_at = call.updated_at = T0 + timedelta(minutes=minute)
    if state is not State.DIALING_AGENT:
        call.advance(State.DIALING_CALLEE)
        if state is State.CONNECTED:
            call.advance(State.CONNECTED)
        elif state is State.ENDED:
            call.end(reason)
        call.updated_at = T0 + timedelta(minutes=updated if updated is not None else minute + 1)
    runtime.journal.record(call, "test")
    return call


def ids(client, query: str) -> list[str]:
    r = client.get("/click2dial/calls" + query, headers=AUTH)
    assert r.status_code == 200, r.get_json()
    return [c["id"] for c in r.get_json()["calls"]]


def test_filters_by_call_ref_agent_origin_and_several_states(runtime, client):
    a = add(runtime, 1, ref="order-1", agent="1001")
    b = add(runtime, 2, ref="order-2", agent="1002", state=State.CONNECTED)
    c = add(runtime, 3, ref="order-1", agent="1002", origin=Origin.WEBRTC, state=State.ENDED)
    d = add(runtime, 4, ref="", agent="1003", origin=Origin.AGI, state=State.DIALING_CALLEE)
    assert ids(client, "?call_ref=order-1") == [c.id, a.id]
    assert ids(client, "?agent=1002") == [c.id, b.id]
    assert ids(client, "?origin=webrtc&origin=agi") == [d.id, c.id]
    assert ids(client, "?state=connected&state=ended") == [c.id, b.id]
    assert ids(client, "?call_ref=order-1&agent=1002") == [c.id]
    assert ids(client, "?call_ref=nothing-like-it") == []
    r = client.get("/click2dial/calls?agent=1002", headers=AUTH).get_json()
    assert r["total"] == 2 and r["next_cursor"] is None


def test_filters_by_creation_and_update_times(runtime, client):
    old = add(runtime, 0, state=State.ENDED, updated=1)
    mid = add(runtime, 10, state=State.ENDED, updated=50)          # ended long after it was placed
    new = add(runtime, 20, state=State.CONNECTED, updated=21)
    at = lambda m: iso(T0 + timedelta(minutes=m)).replace("+", "%2B")   # noqa: E731
    assert ids(client, f"?created_after={at(10)}") == [new.id, mid.id]
    assert ids(client, f"?created_before={at(10)}") == [old.id]
    assert ids(client, f"?created_after={at(5)}&created_before={at(15)}") == [mid.id]
    # Syncing: what changed since minute 30 -- the call placed at 10 and ended at 50.
    assert ids(client, f"?updated_after={at(30)}") == [mid.id]
    # Any ISO 8601 zone is taken.
    assert ids(client, "?created_after=2026-01-05T11:15:00%2B02:00") == [new.id]


def test_the_cursor_pages_are_stable_while_calls_are_placed(runtime, client):
    placed = [add(runtime, m) for m in range(7)]
    newest_first = [c.id for c in reversed(placed)]
    seen: list[str] = []
    page = client.get("/click2dial/calls?limit=3", headers=AUTH).get_json()
    seen += [c["id"] for c in page["calls"]]
    # Calls placed between page reads (later, and one in the very same millisecond as the last seen).
    add(runtime, 100)
    add(runtime, 101)
    while page["next_cursor"]:
        page = client.get(f"/click2dial/calls?limit=3&cursor={page['next_cursor']}", headers=AUTH).get_json()
        seen += [c["id"] for c in page["calls"]]
        add(runtime, 102 + len(seen))
    assert seen == newest_first            # nothing repeated, nothing skipped, the order kept


def test_calls_created_in_the_same_millisecond_are_paged_by_id(runtime, client):
    same = [add(runtime, 5) for _ in range(5)]
    expected = sorted((c.id for c in same), reverse=True)
    first = client.get("/click2dial/calls?limit=2", headers=AUTH).get_json()
    rest = ids(client, f"?limit=10&cursor={first['next_cursor']}")
    assert [c["id"] for c in first["calls"]] + rest == expected


def test_every_unknown_or_bad_parameter_is_named_at_once(runtime, client):
    r = client.get("/click2dial/calls?colour=red&state=ringing&limit=0&created_after=yesterday"
                   "&cursor=%21%21&agent=12&offset=5&call_ref=a%20b", headers=AUTH)
    assert r.status_code == 400
    body = r.get_json()
    assert body["error"] == "invalid-request"
    fields = body["details"]["fields"]
    assert set(fields) == {"colour", "state", "limit", "created_after", "cursor", "agent", "offset", "call_ref"}
    assert fields["colour"].startswith("unknown query parameter; known: state, origin, agent")
    assert "dialing_agent, dialing_callee, connected, ended" in fields["state"]
    assert "an integer from 1 to 200" in fields["limit"]
    assert "ISO 8601" in fields["created_after"]


def test_a_time_without_a_zone_and_a_repeated_single_parameter_are_refused(runtime, client):
    r = client.get("/click2dial/calls?created_after=2026-01-05T09:00:00&agent=1001&agent=1002", headers=AUTH)
    fields = r.get_json()["details"]["fields"]
    assert r.status_code == 400 and set(fields) == {"created_after", "agent"}
    assert fields["agent"] == "given more than once"


def test_a_journal_of_an_earlier_version_gets_the_new_column_and_indexes(tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path}/old.sqlite3"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE calls (id VARCHAR(32) PRIMARY KEY, origin VARCHAR(8) NOT NULL, agent VARCHAR(16) NOT NULL,"
            " callee VARCHAR(16) NOT NULL, outbound_id VARCHAR(16) NOT NULL, clid VARCHAR(16) NOT NULL,"
            " call_ref VARCHAR(230) NOT NULL, state VARCHAR(16) NOT NULL, reason VARCHAR(24),"
            " created_at VARCHAR(32) NOT NULL, answered_at VARCHAR(32), ended_at VARCHAR(32),"
            " duration_s FLOAT NOT NULL, agent_channel VARCHAR(80), callee_channel VARCHAR(80),"
            " bridge_id VARCHAR(80), token_name VARCHAR(64) NOT NULL, idempotency_key VARCHAR(200),"
            " request_hash VARCHAR(64), seq INTEGER NOT NULL)"))
        conn.execute(sa.text(
            "INSERT INTO calls VALUES ('" + "a" * 32 + "', 'rest', '1001', '0215550100', 'random', '0115550001',"
            " 'r', 'ended', 'completed', '2026-01-05T09:00:00.000Z', NULL, '2026-01-05T09:05:00.000Z', 0, NULL,"
            " NULL, NULL, '', NULL, NULL, 1)"))
    engine.dispose()
    journal = Journal(url)
    try:
        [call], _ = journal.list(updated_after=T0 + timedelta(minutes=4))
        assert call["updated_at"] == "2026-01-05T09:05:00.000Z"
        names = {i["name"] for i in sa.inspect(journal.engine).get_indexes("calls")}
        assert {"ix_calls_created_id", "ix_calls_call_ref", "ix_calls_updated"} <= names
    finally:
        journal.close()


def test_a_time_at_the_edge_of_the_calendar_is_read_or_refused_never_an_internal_error(runtime, client):
    call = add(runtime, 1)
    # Before the year 1000: an ordinary time, before every call.
    assert ids(client, "?created_before=0999-12-31T23:59:59Z") == []
    assert ids(client, "?created_after=0999-12-31T23:59:59Z") == [call.id]
    # In UTC these fall outside years 1-9999: refused by name, like any bad time.
    for query in ("?created_after=0001-01-01T00:00:00%2B01:00", "?created_before=9999-12-31T23:59:59-01:00",
                  "?updated_after=0001-01-01T00:30:00%2B01:00"):
        r = client.get("/click2dial/calls" + query, headers=AUTH)
        assert r.status_code == 400, (query, r.get_json())
        name = query[1:].split("=")[0]
        assert set(r.get_json()["details"]["fields"]) == {name}
        assert "ISO 8601" in r.get_json()["details"]["fields"][name]


def test_the_total_is_counted_only_up_to_a_bound_and_says_when_it_stopped(runtime, client, monkeypatch):
    import platforma_c2d.calls.service as service_module
    import platforma_c2d.http.calls as http_calls

    for minute in range(5):
        add(runtime, minute, state=State.ENDED)
    r = client.get("/click2dial/calls?limit=2", headers=AUTH).get_json()
    assert (r["total"], r["total_exact"], len(r["calls"])) == (5, True, 2)
    # With a bound of 3 the journal counts 4 rows at most, and the list says 3, not exact.
    counted = []
    list_page = runtime.journal.list
    monkeypatch.setattr(runtime.journal, "list", lambda **kw: counted.append(kw["count_up_to"]) or list_page(**kw))
    monkeypatch.setattr(service_module, "TOTAL_COUNT_MAX", 3)
    monkeypatch.setattr(http_calls, "TOTAL_COUNT_MAX", 3)
    r = client.get("/click2dial/calls?limit=2", headers=AUTH).get_json()
    assert (r["total"], r["total_exact"], len(r["calls"])) == (3, False, 2) and counted == [4]
    r = client.get("/click2dial/calls?limit=2&state=dialing_agent", headers=AUTH).get_json()
    assert (r["total"], r["total_exact"]) == (0, True)
    # The journal itself: the count stops at the bound.
    assert list_page(limit=1, count_up_to=2)[1] == 2
    assert list_page(limit=1, count_up_to=100)[1] == 5


def test_a_call_ref_longer_than_230_finds_the_call_placed_with_it(runtime, client):
    """SPEC §1: a call_ref is cut to 230 characters, length alone never rejects; the
    filter reads the CRM's reference the same way, so the full reference finds the call."""
    sent = "CRM-" + "7" * 296
    call = add(runtime, 1, ref=sent[:230])            # what a POST with ``sent`` journals
    add(runtime, 2, ref="other")
    assert ids(client, "?call_ref=" + sent) == [call.id]
    assert ids(client, "?call_ref=" + sent[:230]) == [call.id]


def test_a_bad_agent_or_call_ref_filter_says_what_is_accepted_in_the_bodys_words(client):
    fields = client.get("/click2dial/calls?agent=12&call_ref=a%20b", headers=AUTH).get_json()["details"]["fields"]
    assert fields["agent"] == "invalid value '12'; accepted: " + rules.AGENT_FORMATS
    assert fields["call_ref"] == "invalid value 'a b'; accepted: " + rules.CALL_REF_FORMATS
