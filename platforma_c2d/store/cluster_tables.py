"""The cluster's tables in the store (docs/cluster.md, ADR 0013), declared with
the store's other tables so that the migrations' models (``store/schema.py``)
need nothing from the cluster's code.

``cluster_commands``: placements and cancellations sent to a node's active
instance (``cluster/commands.py``); ``cluster_rates``: each token's requests
counted for every instance (``cluster/rates.py``); ``cluster_endpoints``: the
PJSIP endpoints online on each node (``cluster/registrations.py``).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

commands = sa.Table(
    "cluster_commands", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("node", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),        # place | cancel
    sa.Column("payload", sa.Text, nullable=False),          # JSON
    sa.Column("state", sa.String(8), nullable=False),       # pending | taken | done | expired
    sa.Column("result", sa.Text),                           # JSON: {"ok": ...} or {"error": ...}
    sa.Column("created_at", sa.Float, nullable=False),      # epoch seconds, the store's clock
    sa.Column("taken_by", sa.String(64)),
    sa.Index("ix_cluster_commands_node_state", "node", "state"),
)

rates = sa.Table(
    "cluster_rates", metadata,
    sa.Column("name", sa.String(64), primary_key=True),       # the token's name
    sa.Column("kind", sa.String(5), primary_key=True),        # write | read
    sa.Column("minute", sa.Integer, primary_key=True),        # epoch seconds // 60
    sa.Column("hits", sa.Integer, nullable=False),
)

endpoints = sa.Table(
    "cluster_endpoints", metadata,
    sa.Column("endpoint", sa.String(80), primary_key=True),
    sa.Column("node", sa.String(32), primary_key=True),
)
