"""Cluster: per-token request rates counted for every instance (SPEC §11).

``cluster_rates``: one row per (token name, kind, minute) with its count
(``platforma_c2d/cluster/rates.py``).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``cluster_rates``."""
    op.create_table(
        "cluster_rates",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=5), nullable=False),
        sa.Column("minute", sa.Integer(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", "kind", "minute"),
    )


def downgrade() -> None:
    """Drop ``cluster_rates``."""
    op.drop_table("cluster_rates")
