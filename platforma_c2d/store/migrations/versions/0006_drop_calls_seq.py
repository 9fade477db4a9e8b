"""The unused ``calls.seq`` column dropped.

``seq`` counted the updates of a call's row and nothing ever read it: the
order of a call's changes is its ``call_events`` rows, and the event
stream's order is ``events.id``. Dropping it takes a write off every
update of a call.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop ``calls.seq`` (SQLite 3.35 and later drop a column in place)."""
    op.drop_column("calls", "seq")


def downgrade() -> None:
    """Add ``calls.seq`` back, 0 on every row."""
    op.add_column("calls", sa.Column("seq", sa.Integer(), nullable=False, server_default="0"))
