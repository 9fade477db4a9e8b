"""Cluster: the PJSIP endpoints online on each node (``[cluster] agents_by = "registration"``).

``cluster_endpoints``: one row per (endpoint, node), written by each node's
active instance (``platforma_c2d/cluster/registrations.py``).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``cluster_endpoints``."""
    op.create_table(
        "cluster_endpoints",
        sa.Column("endpoint", sa.String(length=80), nullable=False),
        sa.Column("node", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("endpoint", "node"),
    )


def downgrade() -> None:
    """Drop ``cluster_endpoints``."""
    op.drop_table("cluster_endpoints")
