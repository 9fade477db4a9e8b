"""Baseline: the store as the first release with migrations has it.

Every table of the journal's database: ``calls`` and ``call_events`` (the
call journal), ``events``, ``deliveries``, ``outbox_cursor`` and
``call_callbacks`` (events and webhooks), ``clid_pools``, ``clid_numbers``
and ``clid_sticky`` (CLID pools), with their indexes — frozen here as they
were, whatever the models become later.

A journal made by an earlier release, before migrations (no
``alembic_version``), is brought to this revision in place: tables
missing are created, columns missing are added (nullable; ``updated_at``
filled from the call's times), indexes missing are built; no row is lost.

Revision ID: 0001
Revises: none
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BASELINE = sa.MetaData()

_call_events = sa.Table(
    "call_events", BASELINE,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("call_id", sa.String(length=32), nullable=False),
    sa.Column("at", sa.String(length=32), nullable=False),
    sa.Column("state", sa.String(length=16), nullable=False),
    sa.Column("reason", sa.String(length=24), nullable=True),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint("id"),
)
sa.Index("ix_call_events_call_id", _call_events.c.call_id)
_calls = sa.Table(
    "calls", BASELINE,
    sa.Column("id", sa.String(length=32), nullable=False),
    sa.Column("origin", sa.String(length=8), nullable=False),
    sa.Column("agent", sa.String(length=16), nullable=False),
    sa.Column("callee", sa.String(length=16), nullable=False),
    sa.Column("outbound_id", sa.String(length=16), nullable=False),
    sa.Column("clid", sa.String(length=16), nullable=False),
    sa.Column("call_ref", sa.String(length=230), nullable=False),
    sa.Column("state", sa.String(length=16), nullable=False),
    sa.Column("reason", sa.String(length=24), nullable=True),
    sa.Column("ended_by", sa.String(length=8), nullable=True),
    sa.Column("created_at", sa.String(length=32), nullable=False),
    sa.Column("answered_at", sa.String(length=32), nullable=True),
    sa.Column("ended_at", sa.String(length=32), nullable=True),
    sa.Column("updated_at", sa.String(length=32), nullable=True),
    sa.Column("duration_s", sa.Float(), nullable=False),
    sa.Column("cause", sa.Integer(), nullable=True),
    sa.Column("sip_code", sa.Integer(), nullable=True),
    sa.Column("agent_channel", sa.String(length=80), nullable=True),
    sa.Column("callee_channel", sa.String(length=80), nullable=True),
    sa.Column("bridge_id", sa.String(length=80), nullable=True),
    sa.Column("token_name", sa.String(length=64), nullable=False),
    sa.Column("idempotency_key", sa.String(length=200), nullable=True),
    sa.Column("request_hash", sa.String(length=64), nullable=True),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("id"),
)
sa.Index("ix_calls_agent_channel", _calls.c.agent_channel)
sa.Index("ix_calls_agent_state", _calls.c.agent, _calls.c.state)
sa.Index("ix_calls_call_ref", _calls.c.call_ref, _calls.c.created_at)
sa.Index("ix_calls_clid_created", _calls.c.clid, _calls.c.created_at)
sa.Index("ix_calls_created_at", _calls.c.created_at)
sa.Index("ix_calls_created_id", _calls.c.created_at, _calls.c.id)
sa.Index("ix_calls_ended_at", _calls.c.ended_at)
sa.Index("ix_calls_idem", _calls.c.token_name, _calls.c.idempotency_key)
sa.Index("ix_calls_state", _calls.c.state)
sa.Index("ix_calls_updated", _calls.c.updated_at)
_call_callbacks = sa.Table(
    "call_callbacks", BASELINE,
    sa.Column("call_id", sa.String(length=32), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint("call_id")
)
_deliveries = sa.Table(
    "deliveries", BASELINE,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("event_id", sa.Integer(), nullable=False),
    sa.Column("call_id", sa.String(length=32), nullable=False),
    sa.Column("endpoint", sa.String(length=80), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("status", sa.String(length=12), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("created_at", sa.Float(), nullable=False),
    sa.Column("next_at", sa.Float(), nullable=False),
    sa.Column("last_error", sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sqlite_autoincrement=True
)
sa.Index("ix_deliveries_pending", _deliveries.c.status, _deliveries.c.endpoint, _deliveries.c.call_id, _deliveries.c.event_id)
_events = sa.Table(
    "events", BASELINE,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("call_id", sa.String(length=32), nullable=False),
    sa.Column("type", sa.String(length=32), nullable=False),
    sa.Column("at", sa.String(length=32), nullable=False),
    sa.Column("agent", sa.String(length=16), nullable=False),
    sa.Column("token_name", sa.String(length=64), nullable=False),
    sa.Column("call", sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sqlite_autoincrement=True
)
sa.Index("ix_events_agent", _events.c.agent)
sa.Index("ix_events_call_id", _events.c.call_id)
_outbox_cursor = sa.Table(
    "outbox_cursor", BASELINE,
    sa.Column("name", sa.String(length=32), nullable=False),
    sa.Column("event_id", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("name")
)
_clid_numbers = sa.Table(
    "clid_numbers", BASELINE,
    sa.Column("pool", sa.String(length=32), nullable=False),
    sa.Column("number", sa.String(length=16), nullable=False),
    sa.Column("day", sa.String(length=10), nullable=False),
    sa.Column("calls_today", sa.Integer(), nullable=False),
    sa.Column("rested_until", sa.String(length=32), nullable=True),
    sa.Column("health_since", sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint("pool", "number")
)
_clid_pools = sa.Table(
    "clid_pools", BASELINE,
    sa.Column("name", sa.String(length=32), nullable=False),
    sa.Column("draws", sa.Integer(), nullable=False),
    sa.Column("turn", sa.Integer(), nullable=False),
    sa.Column("checked_at", sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint("name")
)
_clid_sticky = sa.Table(
    "clid_sticky", BASELINE,
    sa.Column("pool", sa.String(length=32), nullable=False),
    sa.Column("callee", sa.String(length=16), nullable=False),
    sa.Column("number", sa.String(length=16), nullable=False),
    sa.Column("at", sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint("pool", "callee")
)
sa.Index("ix_clid_sticky_at", _clid_sticky.c.at)


def upgrade() -> None:
    """Create the store's tables and indexes, or complete those an earlier release made."""
    conn = op.get_bind()
    inspector = sa.inspect(conn)
    for table in BASELINE.sorted_tables:
        if not inspector.has_table(table.name):
            table.create(conn)
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                op.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
        if table.name == "calls" and "updated_at" not in have:
            op.execute("UPDATE calls SET updated_at = COALESCE(ended_at, answered_at, created_at)")
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(conn)


def downgrade() -> None:
    """Drop every table of the store (the whole journal: never on a journal you keep)."""
    conn = op.get_bind()
    BASELINE.drop_all(conn)
