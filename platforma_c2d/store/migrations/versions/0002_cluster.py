"""Cluster: each call's node, and the commands between instances (SPEC §11).

* ``calls.node``: the ``[cluster] node`` of the instance that placed or took
  the call (NULL on one node); reconciliation reads only its node's calls.
* ``cluster_commands``: placements and cancellations sent to the active
  instance of the call's node, and their answers
  (``platforma_c2d/cluster/commands.py``).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``calls.node`` and create ``cluster_commands``."""
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("node", sa.String(length=32), nullable=True))
    op.create_table(
        "cluster_commands",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("node", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("taken_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_cluster_commands_node_state", "cluster_commands", ["node", "state"])


def downgrade() -> None:
    """Drop ``cluster_commands`` and ``calls.node``."""
    op.drop_index("ix_cluster_commands_node_state", table_name="cluster_commands")
    op.drop_table("cluster_commands")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("node")
