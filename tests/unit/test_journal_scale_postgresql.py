"""A journal of a million calls on a real PostgreSQL (issue: months, not days; the
``[store] url = "postgresql+psycopg://..."`` store): the lookups the service makes on
every request or recovery use indexes, the list reads one page through its index and
counts only up to its bound, and ``[store] retention_days`` finds old calls through
``ix_calls_ended_at``.

The server is the throw-away one of ``testbed/postgres.py``; the journal is
made with ``generate_series`` in one statement per table, indexes built once at
the end, then ``VACUUM ANALYZE``, as after a restore. The test reads the plans
PostgreSQL really runs (``EXPLAIN ANALYZE``) for the statements the journal
really sends, rather than timing them on a shared machine.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from platforma_c2d.store.journal import Journal
from platforma_c2d.store.retention import Retention
from tests.unit.test_journal_scale import CALLS, NOW, selects_sent


def _fill(url: str) -> None:
    """CALLS calls over 400 days, all ended but the last 30; one history row each
    (the same journal as the SQLite test's)."""
    start = (NOW - timedelta(days=400)).timestamp()
    step = 400 * 86400 / CALLS
    open_from = CALLS - 30
    at = (f"to_char(to_timestamp({start} + i * {step}) AT TIME ZONE 'UTC', "
          "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        indexes = conn.execute(sa.text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('calls', 'call_events') "
            "AND indexname NOT LIKE '%pkey'")).all()
        for name, _ in indexes:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        conn.exec_driver_sql(
            "INSERT INTO calls (id, origin, agent, callee, outbound_id, clid, call_ref, state, reason, "
            "created_at, answered_at, ended_at, duration_s, agent_channel, callee_channel, bridge_id, "
            "token_name, idempotency_key, request_hash) "
            "SELECT lpad(to_hex(i), 32, '0'), 'rest', '1' || lpad(mod(i, 900)::text, 3, '0'), '0215550100', '', "
            f"'0115550001', 'ref-' || i, CASE WHEN i < {open_from} THEN 'ended' "
            f"ELSE (CASE mod(i, 3) WHEN 0 THEN 'dialing_agent' WHEN 1 THEN 'dialing_callee' ELSE 'connected' END) END, "
            f"CASE WHEN i < {open_from} THEN 'completed' END, {at}, {at}, "
            f"CASE WHEN i < {open_from} THEN {at} END, 12.0, 'c2d-' || lpad(to_hex(i), 32, '0') || '-agent', "
            f"'c2d-' || lpad(to_hex(i), 32, '0') || '-callee', NULL, 'crm', 'key-' || i, '{'h' * 64}' "
            f"FROM generate_series(0, {CALLS - 1}) AS i")
        conn.exec_driver_sql(
            "INSERT INTO call_events (call_id, at, state, reason, detail) "
            f"SELECT lpad(to_hex(i), 32, '0'), {at}, 'ended', 'completed', 'callee leg ended' "
            f"FROM generate_series(0, {CALLS - 1}) AS i")
        for _, definition in indexes:
            conn.exec_driver_sql(definition)
        conn.exec_driver_sql("VACUUM ANALYZE calls")
        conn.exec_driver_sql("VACUUM ANALYZE call_events")
    engine.dispose()


@pytest.fixture(scope="module")
def big(postgres_server):
    url = postgres_server.new_database("big")
    Journal(url).close()            # the schema, as the service makes it (Alembic)
    _fill(url)
    journal = Journal(url)
    yield journal
    journal.close()


def _plans(journal: Journal, action) -> list[dict]:
    """The executed plan (``EXPLAIN (ANALYZE, FORMAT JSON)``, its top node) of every
    SELECT the journal sends while ``action()`` runs."""
    sent = selects_sent(journal, action)
    out = []
    with journal.engine.connect() as conn:
        for statement, parameters in sent:
            found = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).scalar()
            out.append((json.loads(found) if isinstance(found, str) else found)[0]["Plan"])
    return out


def _nodes(plan: dict) -> list[dict]:
    """Every node of a plan, top first."""
    return [plan] + [n for child in plan.get("Plans", []) for n in _nodes(child)]


def _read(plans: list[dict]) -> int:
    """Rows the plans' scans really read (returned or filtered out, every loop): what a
    lookup costs, whichever index PostgreSQL picked."""
    return sum((n.get("Actual Rows", 0) + n.get("Rows Removed by Filter", 0)
                + n.get("Rows Removed by Index Recheck", 0)) * n.get("Actual Loops", 1)
               for p in plans for n in _nodes(p) if "Scan" in n["Node Type"])


def _indexes(plans: list[dict]) -> set[str]:
    return {n["Index Name"] for p in plans for n in _nodes(p) if "Index Name" in n}


def _no_table_scan(plans: list[dict]) -> bool:
    return not any(n["Node Type"] == "Seq Scan" for p in plans for n in _nodes(p))


def test_a_call_is_read_by_its_id_through_the_primary_key(big):
    plans = _plans(big, lambda: (big.get(f"{123:032x}"), big.get_row(f"{4567:032x}")))
    assert _no_table_scan(plans) and _indexes(plans) == {"calls_pkey"} and _read(plans) <= 2, plans


def test_an_idempotency_key_and_a_channel_are_found_reading_a_handful_of_rows(big):
    # The key's window (a day here) bounds the rows read, whichever index serves it:
    # a day of calls at most, never the journal.
    since = NOW - timedelta(days=1)
    for key in (f"key-{CALLS - 5}", f"key-{CALLS - 2000}", "never-used"):
        plans = _plans(big, lambda: big.find_idempotent("crm", key, since))
        assert _no_table_scan(plans) and _read(plans) <= 86400 * CALLS // (400 * 86400) + 10, (key, plans)
    plans = _plans(big, lambda: big.find_by_channel(f"c2d-{777:032x}-agent"))
    assert _no_table_scan(plans) and _indexes(plans) == {"ix_calls_agent_channel"} and _read(plans) <= 2, plans


def test_recovery_finds_the_open_calls_among_a_million_through_the_state_index(big):
    unfinished = []
    plans = _plans(big, lambda: unfinished.extend(big.unfinished()))
    assert len(unfinished) == 30
    assert _no_table_scan(plans) and "ix_calls_state" in _indexes(plans) and _read(plans) <= 100, plans


def test_a_call_history_is_read_through_its_index(big):
    plans = _plans(big, lambda: big.events(f"{999_999:032x}"))
    assert _no_table_scan(plans) and _indexes(plans) == {"ix_call_events_call_id"} and _read(plans) <= 2, plans


def test_a_list_page_reads_one_page_and_counts_only_up_to_the_bound(big):
    page, count = _plans(big, lambda: big.list(limit=50, count_up_to=10_001))
    assert _no_table_scan([page, count]), (page, count)
    # The page: newest first straight from an index on created_at, no sort of the table.
    assert page["Actual Rows"] == 50 and _read([page]) <= 100, page
    assert not any(n["Node Type"] == "Sort" for n in _nodes(page)), page
    # The count stops at the bound, not at a million rows.
    assert _read([count]) <= 10_001, count
    assert big.list(limit=50, count_up_to=10_001)[1] == 10_001
    assert big.list(limit=1, agent="1001", count_up_to=10_001)[1] == CALLS // 900 + 1
    # A filtered page through its own index (a CRM's reference).
    plans = _plans(big, lambda: big.list(limit=50, call_ref="ref-4242", count_up_to=10_001))
    assert _no_table_scan(plans) and _read(plans) <= 4, plans


def test_retention_finds_old_calls_through_the_ended_index_in_small_batches(big):
    retention = Retention(big.engine, days=395, batch=500)
    plans = _plans(big, lambda: retention.purge_batch(NOW))
    assert "ix_calls_ended_at" in _indexes(plans) and _no_table_scan(plans), plans
    with big.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM calls")).scalar()
        orphans = conn.execute(sa.text(
            "SELECT count(*) FROM call_events e WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = e.call_id)"
        )).scalar()
    assert left == CALLS - 500 and orphans == 0
