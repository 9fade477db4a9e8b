"""Schema migrations (Alembic) on SQLite and on a real PostgreSQL server.

The migrated schema must equal the models: a table or a column added to a
model without its migration fails here. A journal made by the previous
release (before migrations) is upgraded in place, its rows kept.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from platforma_c2d.calls.model import Call, Origin, State, new_call_id
from platforma_c2d.store import schema
from platforma_c2d.store.journal import Journal
from platforma_c2d.store.outbox import Outbox

# The journal as the last release before migrations made it (its models, copied).
PREVIOUS = sa.MetaData()
sa.Table(
    "calls", PREVIOUS,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("origin", sa.String(8), nullable=False),
    sa.Column("agent", sa.String(16), nullable=False),
    sa.Column("callee", sa.String(16), nullable=False),
    sa.Column("outbound_id", sa.String(16), nullable=False),
    sa.Column("clid", sa.String(16), nullable=False),
    sa.Column("call_ref", sa.String(230), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("reason", sa.String(24)),
    sa.Column("created_at", sa.String(32), nullable=False, index=True),
    sa.Column("answered_at", sa.String(32)),
    sa.Column("ended_at", sa.String(32)),
    sa.Column("duration_s", sa.Float, nullable=False, default=0.0),
    sa.Column("agent_channel", sa.String(80)),
    sa.Column("callee_channel", sa.String(80)),
    sa.Column("bridge_id", sa.String(80)),
    sa.Column("token_name", sa.String(64), nullable=False, default=""),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("seq", sa.Integer, nullable=False, default=0),
    sa.Index("ix_calls_idem", "token_name", "idempotency_key"),
    sa.Index("ix_calls_agent_state", "agent", "state"),
)
sa.Table(
    "call_events", PREVIOUS,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(32), nullable=False, index=True),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(24)),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)


def differences(engine: sa.Engine) -> list:
    """What Alembic's autogenerate would still change to reach the models (empty: none)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        found = compare_metadata(context, schema.all_metadata())
    return [d for d in found if not (isinstance(d, tuple) and d[0] == "remove_table"
                                     and d[1].name == "alembic_version")]


def test_the_migrations_make_exactly_the_models_on_an_empty_store(store_url):
    engine = sa.create_engine(store_url)
    assert differences(engine)              # nothing yet: every table is missing
    schema.migrate(engine)
    assert differences(engine) == []
    assert schema.current_revision(engine) == schema.head_revision() and schema.state(engine) is None
    schema.migrate(engine)                  # a second start changes nothing
    assert differences(engine) == []
    engine.dispose()


def test_a_journal_of_the_previous_release_is_upgraded_in_place_keeping_its_rows(store_url):
    engine = sa.create_engine(store_url)
    PREVIOUS.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO calls (id, origin, agent, callee, outbound_id, clid, call_ref, state, reason, "
            "created_at, answered_at, ended_at, duration_s, token_name, seq) VALUES ('" + "a" * 32 + "', "
            "'rest', '1001', '0215550100', '', '0115550001', 'CRM-7', 'ended', 'completed', "
            "'2026-11-01T10:00:00.000Z', '2026-11-01T10:00:05.000Z', '2026-11-01T10:01:00.000Z', 55.0, "
            "'crm', 4)"))
        conn.execute(sa.text("INSERT INTO call_events (call_id, at, state, detail) VALUES "
                             "('" + "a" * 32 + "', '2026-11-01T10:01:00.000Z', 'ended', 'hangup')"))
    assert "before schema migrations" in schema.state(engine)
    assert schema.check(store_url)[0] == "WARN"      # platforma-c2d check: behind, upgraded at start

    journal = Journal(store_url)                     # what serve / agi do at start
    assert differences(engine) == [] and schema.state(engine) is None
    assert schema.check(store_url)[0] == "ok"
    old = journal.get("a" * 32)
    assert (old["state"], old["reason"], old["call_ref"], old["duration_s"]) == ("ended", "completed", "CRM-7", 55.0)
    assert journal.get_row("a" * 32)["updated_at"] == "2026-11-01T10:01:00.000Z"
    assert [e["detail"] for e in journal.events("a" * 32)] == ["hangup"]
    call = Call(id=new_call_id(), origin=Origin.REST, agent="1001", callee="0215550100",
                outbound_id="", clid="0115550001", call_ref="CRM-8")
    journal.record(call, "new")
    call.state = State.ENDED
    journal.record(call, "ended")
    assert journal.list()[1] == 2
    assert [e["type"] for e in Outbox(journal.engine).read()] == ["call.dialing_agent", "call.ended"]
    journal.close()
    engine.dispose()


def test_a_store_of_a_newer_release_is_refused_by_check(store_url):
    engine = sa.create_engine(store_url)
    schema.migrate(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    level, line = schema.check(store_url)
    assert level == "FAIL" and "9999" in line


def test_downgrade_to_base_removes_every_table(store_url):
    engine = sa.create_engine(store_url)
    schema.migrate(engine)
    with engine.connect() as conn:
        command.downgrade(schema.alembic_config(conn), "base")
        conn.commit()
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
