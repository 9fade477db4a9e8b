"""A journal of a million calls (issue: months, not days): the lookups the service makes on
every request or recovery use indexes, and ``[store] retention_days`` removes old calls
in small batches, keeping what is still needed.

The journal is made quickly with ``executemany`` in one transaction; the
test reads SQLite's query plans (``EXPLAIN QUERY PLAN``) of the statements
the journal really sends, rather than timing them on a shared machine.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from platforma_c2d.calls.model import iso
from platforma_c2d.store import outbox
from platforma_c2d.store.journal import Journal
from platforma_c2d.store.retention import Retention

CALLS = 1_000_000
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def _fill(path) -> None:
    """CALLS calls over 400 days (one a ~35 s), all ended but the last 30; one history row each.

    Generated inside SQLite (a recursive CTE) in one transaction, with the
    indexes built once at the end, as a restore would: seconds, not minutes.
    """
    start = (NOW - timedelta(days=400)).timestamp()
    step = 400 * 86400 / CALLS
    open_from = CALLS - 30
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-200000")
    indexes = db.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").fetchall()
    for (sql,) in indexes:
        db.execute("DROP INDEX " + sql.split()[2])
    numbers = f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {CALLS - 1}) "
    at = f"strftime('%Y-%m-%dT%H:%M:%fZ', {start} + i * {step}, 'unixepoch')"
    with db:
        db.execute(
            "INSERT INTO calls (id, origin, agent, callee, outbound_id, clid, call_ref, state, reason, "
            "created_at, answered_at, ended_at, duration_s, agent_channel, callee_channel, bridge_id, "
            "token_name, idempotency_key, request_hash) " + numbers +
            f"SELECT printf('%032x', i), 'rest', printf('1%03d', i % 900), '0215550100', '', "
            f"'0115550001', 'ref-' || i, CASE WHEN i < {open_from} THEN 'ended' "
            f"ELSE (CASE i % 3 WHEN 0 THEN 'dialing_agent' WHEN 1 THEN 'dialing_callee' ELSE 'connected' END) END, "
            f"CASE WHEN i < {open_from} THEN 'completed' END, {at}, {at}, "
            f"CASE WHEN i < {open_from} THEN {at} END, 12.0, printf('c2d-%032x-agent', i), "
            f"printf('c2d-%032x-callee', i), NULL, 'crm', 'key-' || i, '{'h' * 64}' FROM n")
        db.execute("INSERT INTO call_events (call_id, at, state, reason, detail) " + numbers +
                   f"SELECT printf('%032x', i), {at}, 'ended', 'completed', 'callee leg ended' FROM n")
        for (sql,) in indexes:
            db.execute(sql)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = tmp_path_factory.mktemp("journal") / "calls.sqlite3"
    Journal(f"sqlite:///{path}").close()        # the schema, as the service makes it
    _fill(path)
    journal = Journal(f"sqlite:///{path}")
    yield journal
    journal.close()


def selects_sent(journal: Journal, action) -> list[tuple[str, object]]:
    """(statement, parameters) of every SELECT the journal sends while ``action()`` runs."""
    sent = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    sa.event.listen(journal.engine, "before_cursor_execute", keep)
    try:
        action()
    finally:
        sa.event.remove(journal.engine, "before_cursor_execute", keep)
    assert sent
    return sent


def _plans(journal: Journal, action) -> list[str]:
    """The query plan of every SELECT the journal sends while ``action()`` runs."""
    sent = selects_sent(journal, action)
    out = []
    with journal.engine.connect() as conn:
        for statement, parameters in sent:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            out.append(" | ".join(r[-1] for r in rows))
    return out


def test_a_call_is_read_by_its_id_through_the_primary_key(big):
    plans = _plans(big, lambda: (big.get(f"{123:032x}"), big.get_row(f"{4567:032x}")))
    assert all("SEARCH calls USING INDEX sqlite_autoindex_calls_1" in p for p in plans), plans


def test_an_idempotency_key_is_found_through_its_index(big):
    since = NOW - timedelta(days=1)
    plans = _plans(big, lambda: big.find_idempotent("crm", f"key-{CALLS - 5}", since))
    assert all("USING INDEX ix_calls_idem" in p for p in plans), plans


def test_recovery_lookups_use_indexes(big):
    unfinished = []
    plans = _plans(big, lambda: unfinished.extend(big.unfinished()))
    assert len(unfinished) == 30 and all("USING INDEX ix_calls_state" in p for p in plans), plans
    plans = _plans(big, lambda: big.find_by_channel(f"c2d-{777:032x}-agent"))
    assert all("USING INDEX ix_calls_agent_channel" in p for p in plans), plans


def test_a_call_history_is_read_through_its_index(big):
    plans = _plans(big, lambda: big.events(f"{999_999:032x}"))
    assert all("SEARCH call_events USING INDEX ix_call_events_call_id" in p for p in plans), plans


def test_retention_removes_old_calls_in_small_batches_and_keeps_the_rest(big, tmp_path):
    retention = Retention(big.engine, days=395, batch=500)
    plans = _plans(big, lambda: retention.purge_batch(NOW))
    assert any("USING INDEX ix_calls_ended_at" in p for p in plans), plans
    with big.engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM calls")).scalar()
        oldest = conn.execute(sa.text("SELECT min(ended_at) FROM calls")).scalar()
    assert before == CALLS - 500
    assert oldest > iso(NOW - timedelta(days=400))
    removed = 0
    while (n := retention.purge_batch(NOW)):
        assert n <= 500
        removed += n
    with big.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM calls")).scalar()
        oldest = conn.execute(sa.text("SELECT min(ended_at) FROM calls")).scalar()
        orphans = conn.execute(sa.text(
            "SELECT count(*) FROM call_events WHERE call_id NOT IN (SELECT id FROM calls)")).scalar()
        open_calls = conn.execute(sa.text("SELECT count(*) FROM calls WHERE state != 'ended'")).scalar()
    expected_left = CALLS - round(CALLS * 5 / 400)
    assert abs(left - expected_left) <= 2, (left, expected_left)
    assert oldest >= retention.cutoff(NOW) and orphans == 0 and open_calls == 30


def test_retention_keeps_calls_whose_events_are_not_delivered_yet(store_url):
    journal = Journal(store_url)
    old = iso(NOW - timedelta(days=40))
    with journal.engine.begin() as conn:
        for i, call_id in enumerate(("a" * 32, "b" * 32, "c" * 32)):
            conn.execute(sa.text(
                "INSERT INTO calls (id, origin, agent, callee, outbound_id, clid, call_ref, state, reason, "
                "created_at, ended_at, duration_s, token_name) VALUES (:id, 'rest', '1001', "
                "'0215550100', '', '0115550001', '', 'ended', 'completed', :at, :at, 1.0, '')"),
                {"id": call_id, "at": old})
            conn.execute(outbox.events.insert().values(call_id=call_id, type="call.ended", at=old,
                                                       agent="1001", call="{}"))
        conn.execute(outbox.outbox_cursor.insert().values(name="fan_out", event_id=2))  # c not fanned out
        conn.execute(outbox.deliveries.insert().values(event_id=2, call_id="b" * 32, endpoint="crm",
                                                       url="http://192.0.2.9/", status=outbox.PENDING,
                                                       created_at=0, next_at=0))
    assert Retention(journal.engine, days=30).purge(pause_s=0) == 1
    with journal.engine.connect() as conn:
        assert [r[0] for r in conn.execute(sa.text("SELECT id FROM calls ORDER BY id"))] == ["b" * 32, "c" * 32]
        assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar() == 2
    journal.close()


def test_a_list_page_is_read_through_the_created_index_without_sorting_the_table(big):
    plans = _plans(big, lambda: big.list(limit=50))
    page = plans[0]
    assert "USING INDEX ix_calls_created_id" in page and "TEMP B-TREE" not in page, page


def test_serve_runs_the_retention_only_when_configured(tmp_path):
    from platforma_c2d.config import loads_config
    from platforma_c2d.runtime import Runtime

    url = f"sqlite:///{tmp_path / 'j.sqlite3'}"
    off = Runtime(loads_config(f'[store]\nurl = "{url}"\n'))
    assert off.retention is None
    off.stop()
    on = Runtime(loads_config(f'[store]\nurl = "{url}"\nretention_days = 30\n'))
    assert on.retention.retention.days == 30
    on.retention.start()
    on.stop()
    assert not on.retention._thread.is_alive()


def _vm_steps(journal: Journal, action) -> int:
    """SQLite virtual-machine steps (in thousands) the journal's statements take while ``action()`` runs."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    def watch(conn, cursor, statement, parameters, context, executemany):
        conn.connection.driver_connection.set_progress_handler(count, 1000)

    sa.event.listen(journal.engine, "before_cursor_execute", watch)
    try:
        action()
    finally:
        sa.event.remove(journal.engine, "before_cursor_execute", watch)
    return steps[0]


def test_a_list_page_counts_the_matching_calls_only_up_to_the_bound(big):
    # The page's total stops counting at 10 001 rows: a read costs the same on
    # a journal of a thousand calls or of a million (the whole count, for
    # comparison, walks every row of the index).
    bounded = _vm_steps(big, lambda: big.list(limit=50, count_up_to=10_001))
    whole = _vm_steps(big, lambda: big.list(limit=50, count_up_to=CALLS + 1))
    assert big.list(limit=50, count_up_to=10_001)[1] == 10_001
    assert bounded * 20 < whole, (bounded, whole)
    assert bounded < 200, (bounded, whole)     # thousands of steps
