"""What ``platforma-c2d check`` says of ``[cluster]`` (docs/cluster.md)."""

from __future__ import annotations

import sqlalchemy as sa

from platforma_c2d.cluster.lease import node_is_active


def cluster_report(cluster, store_url: str) -> list[tuple[str, str]]:
    """``(level, line)`` pairs on this instance's node: whether an instance holds
    its lock now (``ok`` either way: this one would be active or standby), and a
    ``WARN`` when no rule names the node with ``agents_by = "rules"`` (no REST call
    would ever be placed there). ``cluster``: ``[cluster]``; nothing when it is off.
    A store that cannot be read is a ``FAIL``."""
    if not cluster.enabled:
        return []
    out: list[tuple[str, str]] = []
    engine = sa.create_engine(store_url)
    try:
        active = node_is_active(engine, cluster.node)
    except sa.exc.SQLAlchemyError as exc:
        return [("FAIL", f"cluster: the lock of node {cluster.node} cannot be read ({type(exc).__name__})")]
    finally:
        engine.dispose()
    if active:
        out.append(("ok", f"cluster: node {cluster.node} has an active instance: this one starts as a standby"))
    else:
        out.append(("ok", f"cluster: node {cluster.node} has no active instance: this one starts active"))
    if cluster.agents_by == "rules" and cluster.node not in {node for _p, node in cluster.parsed_rules()}:
        out.append(("WARN", f"cluster.rules: no rule names node {cluster.node}: no REST call is placed "
                            "through its Asterisk"))
    return out
