"""Idempotency-Keys claimed before a call is dialled, one per token and key (SPEC §2, §11).

``idempotency_keys``: its primary key (token name, key) lets one of any
number of placements with the same key win, on one instance or several
(``platforma_c2d/store/idempotency.py``). Calls journalled before this
revision keep answering replays from ``calls`` itself.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``idempotency_keys``."""
    op.create_table(
        "idempotency_keys",
        sa.Column("token_name", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("call_id", sa.String(length=32), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("token_name", "idempotency_key"),
    )
    op.create_index("ix_idempotency_keys_claimed_at", "idempotency_keys", ["claimed_at"])


def downgrade() -> None:
    """Drop ``idempotency_keys``."""
    op.drop_index("ix_idempotency_keys_claimed_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
